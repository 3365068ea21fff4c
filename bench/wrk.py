"""Drive an HTTP server with ``wrk``: fixed connections, fixed time, latency percentiles, its own CPU.

wrk is a C load generator (Debian package ``wrk``): one event-loop thread keeps dozens of
connections busy on a fraction of a core, so it is not the bottleneck; the CPU it used is
measured (``wait4`` rusage of the wrk process) and reported with every result. A Lua script
sends the given request bodies in turn and prints the summary as JSON when the run ends.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from loadtest.workloads import HttpRequest

RESULT_MARKER = "WRK_RESULT "

LUA_SCRIPT = """
-- args: method, content type, the number of other headers, (name, value) pairs of those, then
-- (path, body file) pairs; requests are sent in turn.
local prepared = {}
local position = 1

function init(args)
  local method = args[1]
  local headers = {["Content-Type"] = args[2]}
  local first = 4 + 2 * tonumber(args[3])
  for i = 4, first - 1, 2 do
    headers[args[i]] = args[i + 1]
  end
  for i = first, #args, 2 do
    local file = assert(io.open(args[i + 1], "rb"))
    local body = file:read("*a")
    file:close()
    prepared[#prepared + 1] = wrk.format(method, args[i], headers, body)
  end
  position = math.random(#prepared)
end

function request()
  local next_request = prepared[position]
  position = position % #prepared + 1
  return next_request
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
    .. '"latency_us": {"mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p95": %d, "p99": %d, "p999": %d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result."""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    errors: int  # non-2xx/3xx answers, socket errors and timeouts together
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu: float  # cores wrk kept busy on average (1.0 = one core)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0


def find_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise WrkError("wrk is not installed; install the Debian package: apt-get install wrk")
    return path


class Wrk:
    """One wrk binary with a scratch folder for its script and request bodies."""

    def __init__(self, cpus: set[int] | None = None, threads: int = 1, timeout_s: float = 10.0) -> None:
        self._binary = find_wrk()
        self._cpus = cpus
        self._threads = threads
        self._timeout = timeout_s
        self._scratch = Path(tempfile.mkdtemp(prefix="digits-wrk-"))
        (self._scratch / "bench.lua").write_text(LUA_SCRIPT)
        self._batches = 0

    def close(self) -> None:
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> Wrk:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _script_args(self, requests: Sequence[HttpRequest]) -> list[str]:
        if not requests:
            raise ValueError("no requests to send")
        kinds = {(r.method, r.content_type, r.headers) for r in requests}
        if len(kinds) != 1:
            raise ValueError("one run sends one method and content type (and headers); split the requests")
        self._batches += 1
        first = requests[0]
        args = [first.method, first.content_type, str(len(first.headers))]
        args += [part for header in first.headers for part in header]
        for index, request in enumerate(requests):
            body = self._scratch / f"body-{self._batches}-{index}.bin"
            body.write_bytes(request.body)
            args += [request.path, str(body)]
        return args

    def run(self, base_url: str, requests: Sequence[HttpRequest], connections: int, duration_s: int) -> WrkResult:
        """Keep ``connections`` connections busy for ``duration_s`` seconds, each sending the requests in turn."""
        if connections < 1 or duration_s < 1:
            raise ValueError("connections and duration_s must be at least 1")
        command = [
            self._binary,
            "--threads", str(min(self._threads, connections)),
            "--connections", str(connections),
            "--duration", f"{duration_s}s",
            "--timeout", f"{self._timeout:g}s",
            "--script", str(self._scratch / "bench.lua"),
            base_url.rstrip("/") + "/",
            "--", *self._script_args(requests),
        ]  # fmt: skip
        cpus = self._cpus
        with tempfile.TemporaryFile() as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
            started = time.monotonic()
            # wait4 returns this child's own rusage: the CPU wrk used, and nothing else's.
            _, status, usage = _wait4_bounded(process, deadline=started + duration_s + self._timeout + 30)
            out.seek(0)
            output = out.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        line = next((x for x in output.splitlines() if x.startswith(RESULT_MARKER)), None)
        if code != 0 or line is None:
            raise WrkError(f"wrk exited with {code} and no result: {output[-1500:]}")
        parsed = orjson.loads(line[len(RESULT_MARKER) :])
        duration = parsed["duration_us"] / 1e6
        latency = {key: value / 1000 for key, value in parsed["latency_us"].items()}
        return WrkResult(
            requests=int(parsed["requests"]),
            duration_s=duration,
            errors=sum(int(v) for v in parsed["errors"].values()),
            mean_ms=latency["mean"],
            p50_ms=latency["p50"],
            p90_ms=latency["p90"],
            p95_ms=latency["p95"],
            p99_ms=latency["p99"],
            max_ms=latency["max"],
            generator_cpu=(usage.ru_utime + usage.ru_stime) / duration if duration else 0.0,
        )


def _wait4_bounded(process: subprocess.Popen[bytes], deadline: float) -> tuple[int, int, resource.struct_rusage]:
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return pid, status, usage
        if time.monotonic() > deadline:
            process.kill()
        time.sleep(0.05)
