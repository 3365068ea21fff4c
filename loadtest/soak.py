"""``digits soak``: a long open-loop run at a fraction of the capacity, mixing every kind of request with bad
ones, that follows the server's memory and open file descriptors and counts 5xx answers and timeouts.

The mix: pixels as JSON, PNG uploads, feature maps, and bad inputs (not JSON, a blank image, an unsupported
content type) that must be refused with a 4xx. The load is sent in windows of ``sample_seconds``; after
each, the server's resident memory and open descriptors (the process and its children) are read."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from PIL import Image
from urllib3 import encode_multipart_formdata

from loadtest.open_loop import LoadResult, closed_loop_capacity, open_loop
from loadtest.processes import process_tree
from loadtest.samples import Sample, load_samples
from loadtest.workloads import MULTIPART_BOUNDARY, HttpRequest, Workload, predict_requests
from ops.local_servers import LOOPBACK, ServerProcess, free_port

BAD_KINDS = frozenset({"not-json", "blank-png", "wrong-type"})
TABLE_HEADER = "seconds  rss MiB  fds    sent     ok  bad 4xx  busy 503  other 5xx  timeouts  unexpected"


def soak_mix(samples: Sequence[Sample]) -> list[tuple[str, HttpRequest]]:
    """Ten requests a round: 4 pixels JSON, 3 PNG uploads, 1 with feature maps, 2 bad inputs (in turn)."""
    pixels = predict_requests(Workload.pixels, samples)
    pngs = predict_requests(Workload.png, samples)
    features = [
        HttpRequest("POST", "/v1/predict", "application/json", orjson.dumps({"instances": [{"pixels": s.pixels}],
                    "features": ["conv1", "pool2"], "feature_format": "png"}), s.label)
        for s in samples
    ]  # fmt: skip
    blank = io.BytesIO()
    Image.new("L", (64, 64), 255).save(blank, format="PNG")
    body, multipart = encode_multipart_formdata(
        {"file": ("blank.png", blank.getvalue(), "image/png")}, MULTIPART_BOUNDARY
    )
    bad = [
        ("not-json", HttpRequest("POST", "/v1/predict", "application/json", b'{"instances": [', -1)),
        ("blank-png", HttpRequest("POST", "/v1/predict", multipart, body, -1)),
        ("wrong-type", HttpRequest("POST", "/v1/predict", "text/plain", b"seven", -1)),
    ]
    mix: list[tuple[str, HttpRequest]] = []
    for n in range(len(samples)):
        mix += [("json", pixels[n]), ("png", pngs[n]), ("json", pixels[-n - 1]), ("png", pngs[-n - 1])]
        mix += [("json", pixels[n // 2]), ("features", features[n]), ("png", pngs[n // 2]), ("json", pixels[n // 3])]
        mix += [bad[n % 3], bad[(n + 1) % 3]]
    return mix


@dataclass(frozen=True)
class Resources:
    rss_mib: float
    open_fds: int


def resources(pid: int) -> Resources:
    """Resident memory and open file descriptors of ``pid`` and its descendants (the gateway's workers)."""
    rss_kib, fds = 0, 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{member}/status").read_text()
            rss_kib += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
            fds += len(os.listdir(f"/proc/{member}/fd"))
    return Resources(rss_kib / 1024, fds)


@dataclass
class SoakSample:
    seconds: float
    rss_mib: float
    open_fds: int
    sent: int = 0
    ok: int = 0
    refused_bad: int = 0  # bad inputs answered 4xx, as they must be
    refused_busy: int = 0  # 503 with Retry-After: the server's admission refused it under load
    server_errors: int = 0  # any other 5xx
    timeouts: int = 0
    failures: int = 0  # connection errors other than timeouts
    unexpected: int = 0  # a good request not answered 200 (and not 5xx), or a bad one not 4xx

    def count(self, window: LoadResult) -> None:
        for outcome in window.outcomes:
            self.sent += 1
            status, bad = outcome.status, outcome.kind in BAD_KINDS
            if status is None:
                self.timeouts += outcome.failure == "timeout"
                self.failures += outcome.failure != "timeout"
            elif status == 503 and outcome.retry_after is not None:
                self.refused_busy += 1
            elif status >= 500:
                self.server_errors += 1
            elif bad and 400 <= status < 500:
                self.refused_bad += 1
            elif not bad and status == 200:
                self.ok += 1
            else:
                self.unexpected += 1


@dataclass
class SoakReport:
    rate: float
    capacity: float | None
    warmup_seconds: float
    samples: list[SoakSample] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        keys = ("sent", "ok", "refused_bad", "refused_busy", "server_errors", "timeouts", "failures", "unexpected")
        return {key: sum(getattr(sample, key) for sample in self.samples) for key in keys}

    def growth_after_warmup(self) -> dict[str, float]:
        """Growth after the warm-up, as a fraction: RSS at the end against the first reading; open descriptors
        as the lowest count of the second half against the lowest of the first (each reading also counts the
        load's connections still open at that moment, which come and go; a leak raises the floor)."""
        warm = [s for s in self.samples if s.seconds >= self.warmup_seconds] or self.samples[-1:]
        first, last = warm[0], self.samples[-1]
        half = max(len(warm) // 2, 1)
        early_fds, late_fds = min(s.open_fds for s in warm[:half]), min(s.open_fds for s in warm[-half:])
        return {
            "rss": (last.rss_mib - first.rss_mib) / first.rss_mib,
            "rss_max": (max(s.rss_mib for s in warm) - first.rss_mib) / first.rss_mib,
            "open_fds": (late_fds - early_fds) / max(early_fds, 1),
        }

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "rate": self.rate,
            "capacity": self.capacity,
            "warmup_seconds": self.warmup_seconds,
            "totals": self.totals(),
            "growth_after_warmup": self.growth_after_warmup(),
            "samples": [asdict(sample) for sample in self.samples],
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)

    @staticmethod
    def row(s: SoakSample) -> str:
        return (
            f"{s.seconds:7.0f}  {s.rss_mib:7.1f}  {s.open_fds:3d}  {s.sent:6d}  {s.ok:5d}  {s.refused_bad:7d}  "
            f"{s.refused_busy:8d}  {s.server_errors:9d}  {s.timeouts:8d}  {s.unexpected:10d}"
        )

    def table(self) -> str:
        lines = [TABLE_HEADER, *(self.row(sample) for sample in self.samples)]
        growth, totals = self.growth_after_warmup(), self.totals()
        lines.append(
            f"{self.rate:.0f} req/s offered"
            + (f" ({self.rate / self.capacity:.0%} of {self.capacity:.0f} req/s measured)" if self.capacity else "")
            + f"; after {self.warmup_seconds:.0f} s of warm-up: RSS {growth['rss']:+.1%} "
            f"(peak {growth['rss_max']:+.1%}),"
            f" open descriptors {growth['open_fds']:+.1%}; {totals['refused_busy']} x 503 busy (Retry-After), "
            f"{totals['server_errors']} x other 5xx, {totals['timeouts']} "
            f"timeouts, {totals['failures']} connection errors, {totals['unexpected']} unexpected answers"
        )
        return "\n".join(lines)


async def soak(
    url: str,
    pid: int,
    *,
    seconds: float,
    fraction: float = 0.7,
    rate: float | None = None,
    sample_seconds: float = 5.0,
    warmup_seconds: float = 60.0,
    timeout_seconds: float = 10.0,
    headers: dict[str, str] | None = None,
    on_sample: Callable[[SoakSample], None] | None = None,
) -> SoakReport:
    """Soak the server at ``url`` (process ``pid``) for ``seconds``: at ``rate`` requests a second, or at
    ``fraction`` of the capacity measured first with the same mix."""
    mix = soak_mix(load_samples())
    capacity = None
    if rate is None:
        capacity = await closed_loop_capacity(url, [r for _, r in mix], concurrency=16, seconds=5)
        rate = fraction * capacity
    report = SoakReport(rate, capacity, warmup_seconds)
    started = time.monotonic()
    position = 0
    while (elapsed := time.monotonic() - started) < seconds:
        window = min(sample_seconds, seconds - elapsed)
        ordered = mix[position:] + mix[:position]
        result = await open_loop(url, ordered, rate=rate, seconds=window, timeout_seconds=timeout_seconds,
                                 headers=headers)  # fmt: skip
        position = (position + len(result.outcomes)) % len(mix)
        used = resources(pid)
        sample = SoakSample(time.monotonic() - started, used.rss_mib, used.open_fds)
        sample.count(result)
        report.samples.append(sample)
        if on_sample is not None:
            on_sample(sample)
    return report


def run_soak(
    *,
    url: str | None,
    pid: int | None,
    seconds: float,
    fraction: float,
    rate: float | None,
    sample_seconds: float,
    warmup_seconds: float,
    log_dir: Path,
    out: Path | None = None,
) -> SoakReport:
    """``digits soak``: against the gateway at ``url`` (process ``pid``), or a ``digits serve`` of its own
    started with this environment's ``DIGITS_*`` settings; prints a line per sample and the summary."""
    with contextlib.ExitStack() as stack:
        if url is None:
            port = free_port()
            url = f"http://{LOOPBACK}:{port}"
            server = ServerProcess("soak-gateway", [sys.executable, "-m", "digits_cli.main", "serve"],
                                   {"DIGITS_HOST": LOOPBACK, "DIGITS_PORT": str(port)}, log_dir, url=url)  # fmt: skip
            server.start(f"{url}/readyz", 120)
            stack.callback(server.stop)
            pid = server.pid
        if pid is None:
            raise ValueError("give the gateway's process id (--pid) with --url, to follow its memory and descriptors")
        print(TABLE_HEADER, flush=True)
        report = asyncio.run(
            soak(url, pid, seconds=seconds, fraction=fraction, rate=rate, sample_seconds=sample_seconds,
                 warmup_seconds=warmup_seconds, on_sample=lambda s: print(SoakReport.row(s), flush=True))
        )  # fmt: skip
    print(report.table().splitlines()[-1])
    if out is not None:
        out.write_bytes(report.to_json())
        print(f"wrote {out}")
    return report
