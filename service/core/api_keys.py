"""API keys: a file of sha256 hashes, one a line with an optional name, checked in constant time.

The file holds no key, only ``<sha256 hex of the key> [name]`` per line (``#`` starts a comment).
It is re-read when it changes (checked at most once a second) and on ``reload()`` (SIGHUP).
A key is never logged or kept; only its name is, which is what a caller may report.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

HASH = re.compile(r"[0-9a-f]{64}")
CHECK_INTERVAL_SECONDS = 1.0


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(credentials: str) -> str | None:
    """The key in an ``Authorization`` value (HTTP header or gRPC metadata) of the form ``Bearer <key>``."""
    scheme, _, key = credentials.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return None
    return key.strip()


def new_key(name: str = "") -> tuple[str, str]:
    """A new random key and the line that lets it in (its hash and ``name``)."""
    key = secrets.token_urlsafe(32)
    return key, f"{key_hash(key)} {name}".strip()


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    name: str


class ApiKeys:
    """The keys in ``path``; ``identify`` says whose a presented key is."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: tuple[_Entry, ...] = ()
        self._signature: tuple[int, int] | None = None
        self._checked_at = 0.0
        self.reload()

    def reload(self) -> None:
        """Read the file again. An unreadable file lets nobody in (and says so in the log)."""
        self._checked_at = time.monotonic()
        try:
            stat = self.path.stat()
            text = self.path.read_text()
        except OSError as exc:
            log.error("API keys file %s cannot be read (%s): every key is refused", self.path, exc.strerror)
            self._entries, self._signature = (), None
            return
        entries: list[_Entry] = []
        for number, line in enumerate(text.splitlines(), start=1):
            fields = line.split("#", 1)[0].split(None, 1)
            if not fields:
                continue
            digest = fields[0].lower()
            if not HASH.fullmatch(digest):
                log.warning("API keys file %s, line %d: not a sha256 hex digest; skipped", self.path, number)
                continue
            name = fields[1].strip() if len(fields) > 1 else f"line {number}"
            entries.append(_Entry(bytes.fromhex(digest), name))
        self._entries = tuple(entries)
        self._signature = (stat.st_mtime_ns, stat.st_size)
        log.info("API keys: %d loaded from %s (%s)", len(entries), self.path, ", ".join(e.name for e in entries))

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < CHECK_INTERVAL_SECONDS:
            return
        self._checked_at = now
        try:
            stat = self.path.stat()
            signature: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            signature = None
        if signature != self._signature:
            self.reload()

    def identify(self, key: str) -> str | None:
        """The name of ``key``, or None when it is not one of ours. Every stored hash is compared, in
        constant time, so the answer's timing says nothing about which one came close."""
        self._reload_if_changed()
        presented = hashlib.sha256(key.encode()).digest()
        found: str | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest):
                found = entry.name
        return found
