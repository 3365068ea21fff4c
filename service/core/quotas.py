"""Per API key quotas: token buckets in requests per second (``rps=``) and images per second (``ips=``), set on the
key's line of the keys file (``<sha256> name rps=20 ips=200``).

A request is charged its request token before its body is read (:class:`~service.http.quota.QuotaMiddleware`),
and its images once the body is read and their number known (:meth:`Inference.run` calls :func:`charge_images`),
before any is decoded: a request refused for its images has spent its request token. A bucket holds one second
of its rate (at least one token). A request with more images than a full bucket holds waits for a full bucket and
leaves it in debt: the rate holds over time and no request size is refused forever.

With several worker processes the buckets live in one file that every worker maps, each update under an exclusive
``flock``: the quota holds for the whole server, exactly (the workers share the machine's monotonic clock).
"""

from __future__ import annotations

import contextvars
import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

from service.core.api_keys import Caller
from service.core.errors import ApiError, ErrorCode
from service.core.metrics import Metrics

log = logging.getLogger(__name__)

Kind = Literal["requests", "images"]
OPTIONS: dict[Kind, str] = {"requests": "rps", "images": "ips"}
# IETF draft-ietf-httpapi-ratelimit-headers-10: each policy's name, its quota q over a window w of 1 second.
WINDOW_SECONDS = 1


@dataclass(frozen=True)
class Quota:
    """A key's rates; a rate of None is unlimited."""

    requests_per_second: float | None = None
    images_per_second: float | None = None

    @classmethod
    def of(cls, caller: Caller) -> Quota | None:
        """The quota on a caller's key line, None when it sets none (an unreadable rate is ignored, and logged)."""
        rates: dict[Kind, float | None] = {}
        for kind, option in OPTIONS.items():
            text = caller.options.get(option)
            rates[kind] = None if text is None else _rate(text)
            if text is not None and rates[kind] is None:
                log.warning("API key %s: %s=%s is not a positive rate; ignored", caller.name, option, text)
        quota = cls(rates["requests"], rates["images"])
        return quota if quota.requests_per_second or quota.images_per_second else None

    def rate(self, kind: Kind) -> float | None:
        return self.requests_per_second if kind == "requests" else self.images_per_second

    def policy_header(self) -> str:
        """The ``RateLimit-Policy`` field: one policy per rate set."""
        return ", ".join(
            f'"{kind}";q={_number(rate)};w={WINDOW_SECONDS}'
            for kind in OPTIONS
            if (rate := self.rate(kind)) is not None
        )


class Taken(NamedTuple):
    granted: bool
    remaining: float  # tokens left (granted) or held (refused)
    wait_seconds: float  # until the request would be granted (0 when it was)


class Buckets(Protocol):
    def take(self, slot: str, rate: float, amount: int, now: float) -> Taken: ...


def _take(tokens: float, stamp: float, rate: float, amount: int, now: float) -> tuple[float, Taken]:
    """One bucket's new level and the answer, from its level ``tokens`` at ``stamp`` (NaN: a new, full bucket)."""
    capacity = max(rate * WINDOW_SECONDS, 1.0)
    tokens = capacity if math.isnan(stamp) else min(capacity, tokens + (now - stamp) * rate)
    needed = min(float(amount), capacity)
    if tokens >= needed:
        tokens -= amount
        return tokens, Taken(True, max(tokens, 0.0), 0.0)
    return tokens, Taken(False, max(tokens, 0.0), (needed - tokens) / rate)


class LocalBuckets:
    """The buckets of a single-process server."""

    def __init__(self) -> None:
        self._levels: dict[str, tuple[float, float]] = {}

    def take(self, slot: str, rate: float, amount: int, now: float) -> Taken:
        tokens, stamp = self._levels.get(slot, (0.0, math.nan))
        tokens, taken = _take(tokens, stamp, rate, amount, now)
        if taken.granted or math.isnan(stamp):
            self._levels[slot] = (tokens, now)
        return taken


SLOT = struct.Struct("<Qdd")  # the slot's key (a hash of its name; 0: free), tokens, time of that level
SLOTS = 4096


class SharedBuckets:
    """Buckets in a file every worker maps: an open-addressed table of :data:`SLOTS` slots, read and written under
    an exclusive ``flock`` of the file."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        size = SLOT.size * SLOTS
        with self._locked():
            if os.fstat(self._fd).st_size < size:
                os.ftruncate(self._fd, size)  # zeros: every slot free
        self._map = mmap.mmap(self._fd, size)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def take(self, slot: str, rate: float, amount: int, now: float) -> Taken:
        key = int.from_bytes(hashlib.blake2b(slot.encode(), digest_size=8).digest(), "little") or 1
        with self._locked():
            index = key % SLOTS
            for _ in range(SLOTS):
                found, tokens, stamp = SLOT.unpack_from(self._map, index * SLOT.size)
                if found in (key, 0):
                    break
                index = (index + 1) % SLOTS
            else:
                raise RuntimeError("the quota table is full")
            if found == 0:
                stamp = math.nan
            tokens, taken = _take(tokens, stamp, rate, amount, now)
            if taken.granted or found == 0:
                SLOT.pack_into(self._map, index * SLOT.size, key, tokens, now)
            return taken

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)


@dataclass(frozen=True)
class Charge:
    """A request admitted under a quota: what its images are charged to."""

    quotas: Quotas
    caller: Caller
    quota: Quota


_current: contextvars.ContextVar[Charge | None] = contextvars.ContextVar("digits_quota_charge", default=None)


class Quotas:
    """Charges callers' requests and images to their keys' buckets, and counts by key name."""

    def __init__(self, buckets: Buckets, metrics: Metrics) -> None:
        self.buckets = buckets
        self.metrics = metrics
        self._quotas: dict[tuple[str, tuple[tuple[str, str], ...]], Quota | None] = {}

    def quota(self, caller: Caller) -> Quota | None:
        """The caller's quota, read once per version of its key line."""
        line = (caller.name, tuple(sorted(caller.options.items())))
        if line not in self._quotas:
            self._quotas[line] = Quota.of(caller)
        return self._quotas[line]

    def charge(self, charge: Charge, kind: Kind, amount: int) -> None:
        """Take ``amount`` from the caller's ``kind`` bucket, or refuse with 429 ``quota_exceeded``."""
        name = charge.caller.name
        if kind == "requests":
            self.metrics.key_requests.labels(key_name=name).inc()
        rate = charge.quota.rate(kind)
        if rate is not None:
            taken = self.buckets.take(f"{name}\0{kind}", rate, amount, time.monotonic())
            if not taken.granted:
                self.metrics.quota_refusals.labels(key_name=name, quota=kind).inc()
                raise _refusal(charge.quota, kind, rate, taken)
        if kind == "images":
            self.metrics.key_images.labels(key_name=name).inc(amount)

    def admit(self, caller: Caller) -> Admission | None:
        """Charge one request to ``caller`` (429 when over quota); until :func:`release`, :func:`charge_images`
        charges to it too."""
        quota = self.quota(caller)
        if quota is None:
            self.metrics.key_requests.labels(key_name=caller.name).inc()
            return None
        charge = Charge(self, caller, quota)
        self.charge(charge, "requests", 1)
        return _current.set(charge)


Admission = contextvars.Token[Charge | None]


def release(admission: Admission | None) -> None:
    """The request admitted under ``admission`` is over."""
    if admission is not None:
        _current.reset(admission)


def charge_images(count: int) -> None:
    """Charge ``count`` images to the quota the current request was admitted under, if any."""
    charge = _current.get()
    if charge is not None:
        charge.quotas.charge(charge, "images", count)


def _refusal(quota: Quota, kind: Kind, rate: float, taken: Taken) -> ApiError:
    retry = max(1, math.ceil(taken.wait_seconds))
    return ApiError(
        ErrorCode.quota_exceeded,
        f"this key's quota of {_number(rate)} {kind} per second is spent: retry in {retry} s",
        headers={
            "Retry-After": str(retry),
            "RateLimit-Policy": quota.policy_header(),
            "RateLimit": f'"{kind}";r={math.floor(taken.remaining)};t={retry}',
        },
    )


def _rate(text: str) -> float | None:
    try:
        rate = float(text)
    except ValueError:
        return None
    return rate if 0 < rate < math.inf else None


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def shared_buckets_path(directory: str | None) -> Path | None:
    """Where the workers of a multi-process server share their buckets: in the directory they share metrics in."""
    return Path(directory) / "quota-buckets" if directory else None
