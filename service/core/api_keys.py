"""API keys: a file of sha256 hashes, one a line with an optional name, role and options, checked in constant time.

The file holds no key, only ``<sha256 hex of the key> [name] [role=predict|admin] [option=value ...]`` per line
(``#`` starts a comment). A key's role is ``predict`` unless the line says ``role=admin``: an admin key may also
manage the model repository and rollouts. Other ``option=value`` fields are kept for whoever reads them.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from service.core.errors import ApiError, ErrorCode

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


def new_key(name: str = "", role: Role = "predict") -> tuple[str, str]:
    """A new random key and the line that lets it in (its hash, ``name`` and, for an admin key, its role)."""
    key = secrets.token_urlsafe(32)
    return key, " ".join(part for part in (key_hash(key), name, "role=admin" if role == "admin" else "") if part)


Role = Literal["predict", "admin"]
ROLES: tuple[Role, ...] = ("predict", "admin")


@dataclass(frozen=True)
class Caller:
    """Whose a presented key is: its name (what logs and metrics may show), its role, and its line's options."""

    name: str
    role: Role = "predict"
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    caller: Caller


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
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            digest = fields[0].lower()
            if not HASH.fullmatch(digest):
                log.warning("API keys file %s, line %d: not a sha256 hex digest; skipped", self.path, number)
                continue
            caller = _caller(fields[1:], f"line {number}")
            if caller is None:
                log.warning(
                    "API keys file %s, line %d: role is neither %s; skipped", self.path, number, " nor ".join(ROLES)
                )
                continue
            entries.append(_Entry(bytes.fromhex(digest), caller))
        self._entries = tuple(entries)
        self._signature = (stat.st_mtime_ns, stat.st_size)
        described = ", ".join(f"{e.caller.name} ({e.caller.role})" for e in entries)
        log.info("API keys: %d loaded from %s (%s)", len(entries), self.path, described)

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

    def identify(self, key: str) -> Caller | None:
        """Whose ``key`` is, or None when it is not one of ours. Every stored hash is compared, in constant time,
        so the answer's timing says nothing about which one came close."""
        self._reload_if_changed()
        presented = hashlib.sha256(key.encode()).digest()
        found: Caller | None = None
        for entry in self._entries:
            if hmac.compare_digest(presented, entry.digest):
                found = entry.caller
        return found

    def callers(self) -> tuple[Caller, ...]:
        """Whose keys the file lets in: their names, roles and options (no hash)."""
        self._reload_if_changed()
        return tuple(entry.caller for entry in self._entries)


def _caller(fields: list[str], default_name: str) -> Caller | None:
    """The caller a line's fields after the hash describe: a name (the first field without ``=``), ``role=`` and
    other options; None for an unknown role."""
    names = [f for f in fields if "=" not in f]
    options = dict(f.split("=", 1) for f in fields if "=" in f)
    role = options.pop("role", "predict")
    if role not in ROLES:
        return None
    return Caller(" ".join(names) or default_name, role, options)


ADMIN_KEY_NEEDED = (
    "the repository and rollout endpoints need an admin key: set DIGITS_API_KEYS_FILE with a key whose line ends in "
    "role=admin (digits api-key --role admin)"
)


def require_admin(caller: Caller | None) -> None:
    """Refuse ``forbidden`` (403) a caller that is not an admin; ``None``: no key file, so nobody is one. (No key at
    all, with a key file, was refused ``unauthorized`` before this by each protocol's key check.)"""
    if caller is None or not caller.is_admin:
        raise ApiError(ErrorCode.forbidden, ADMIN_KEY_NEEDED if caller is None else f"the key of {caller.name} may "
                       "predict only; the repository and rollout endpoints need a role=admin key")  # fmt: skip
