"""Headless Locust with service-level objectives: ``digits loadtest``.

Runs ``loadtest/locustfile.py`` in a Locust subprocess for a fixed time; Locust writes its
CSV files and HTML report to the output folder, and the locustfile its final totals
(``locust_totals.json``). Those are checked against the objectives: p99 latency, failure
ratio (wrong answers count as failures) and minimum throughput. The verdict goes to
``summary.json`` beside the report.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
CSV_PREFIX = "locust"
HTML_REPORT = "report.html"
SUMMARY = "summary.json"
TOTALS = "locust_totals.json"
USER_CLASSES = ("ScanUploadUser", "PixelsUser", "BatchUser", "FeatureMapsUser")
# Locust ends cleanly with 0, or 1 when any request failed; anything else means it did not run.
LOCUST_COMPLETED = (0, 1)


class LoadTestError(RuntimeError):
    """Locust could not run or left no statistics; the message says why."""


@dataclass(frozen=True)
class Objectives:
    max_p99_ms: float = 500.0
    max_failure_ratio: float = 0.0
    min_rps: float = 20.0

    def __post_init__(self) -> None:
        if self.max_p99_ms <= 0:
            raise ValueError(f"--max-p99-ms must be positive, got {self.max_p99_ms}")
        if not 0.0 <= self.max_failure_ratio <= 1.0:
            raise ValueError(f"--max-failure-ratio is a fraction in [0, 1], got {self.max_failure_ratio}")
        if self.min_rps < 0:
            raise ValueError(f"--min-rps must be 0 (no minimum) or more, got {self.min_rps}")


@dataclass(frozen=True)
class LoadTestConfig:
    host: str = "http://127.0.0.1:8000"
    users: int = 12
    spawn_rate: float = 4.0
    duration_s: float = 60.0
    out_dir: Path = Path("reports/loadtest")
    think_time_s: float = 0.0
    user_classes: tuple[str, ...] = ()
    processes: int = 1
    objectives: Objectives = field(default_factory=Objectives)

    def __post_init__(self) -> None:
        if not self.host.startswith(("http://", "https://")):
            raise ValueError(f"--host must be a URL such as http://127.0.0.1:8000, got {self.host!r}")
        if self.users < 1 or self.spawn_rate <= 0 or self.duration_s <= 0 or self.processes < 1:
            raise ValueError("--users, --spawn-rate, --duration and --processes must be positive")
        if self.think_time_s < 0:
            raise ValueError(f"--think-time must be 0 or more seconds, got {self.think_time_s}")
        unknown = [name for name in self.user_classes if name not in USER_CLASSES]
        if unknown:
            raise ValueError(f"unknown user class(es) {', '.join(unknown)}; choose from {', '.join(USER_CLASSES)}")

    @property
    def totals_file(self) -> Path:
        return self.out_dir / TOTALS


@dataclass(frozen=True)
class Totals:
    """Locust's aggregated row: every request of every user class."""

    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    failure_lines: tuple[str, ...] = ()  # "count x METHOD name: reason", one per distinct failure

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def locust_command(config: LoadTestConfig) -> list[str]:
    command = [
        sys.executable, "-m", "locust",
        "--locustfile", str(LOCUSTFILE),
        "--headless",
        "--host", config.host,
        "--users", str(config.users),
        "--spawn-rate", f"{config.spawn_rate:g}",
        "--run-time", f"{math.ceil(config.duration_s)}s",
        "--stop-timeout", "10",
        "--csv", str(config.out_dir / CSV_PREFIX),
        "--html", str(config.out_dir / HTML_REPORT),
        "--only-summary",
        "--think-time", f"{config.think_time_s:g}",
        "--summary-file", str(config.totals_file),
    ]  # fmt: skip
    if config.processes > 1:
        command += ["--processes", str(config.processes)]
    return command + list(config.user_classes)


def read_totals(totals_file: Path) -> Totals:
    if not totals_file.is_file():
        raise LoadTestError(f"Locust wrote no totals ({totals_file} is missing)")
    data = orjson.loads(totals_file.read_bytes())
    return Totals(
        requests=int(data["requests"]),
        failures=int(data["failures"]),
        rps=float(data["rps"]),
        p50_ms=float(data["p50_ms"]),
        p95_ms=float(data["p95_ms"]),
        p99_ms=float(data["p99_ms"]),
        failure_lines=tuple(data["failure_lines"]),
    )


def violations(totals: Totals, objectives: Objectives) -> list[str]:
    """Each objective the run missed, said in words; empty when all were met."""
    missed = []
    if totals.requests == 0:
        missed.append("no request completed")
    if totals.p99_ms > objectives.max_p99_ms:
        missed.append(f"p99 latency {totals.p99_ms:.0f} ms > {objectives.max_p99_ms:g} ms")
    if totals.failure_ratio > objectives.max_failure_ratio:
        missed.append(
            f"failure ratio {totals.failure_ratio:.4f} ({totals.failures} of {totals.requests}) "
            f"> {objectives.max_failure_ratio:g}"
        )
    if totals.rps < objectives.min_rps:
        missed.append(f"throughput {totals.rps:.1f} req/s < {objectives.min_rps:g} req/s")
    return missed


def run_locust(config: LoadTestConfig) -> Totals:
    config.out_dir.mkdir(parents=True, exist_ok=True)
    config.totals_file.unlink(missing_ok=True)
    log_path = config.out_dir / "locust.log"
    with log_path.open("wb") as log:
        # Locust ends itself at --run-time; the extra margin covers start-up and --stop-timeout.
        completed = subprocess.run(
            locust_command(config), stdout=log, stderr=subprocess.STDOUT, timeout=config.duration_s + 120, check=False
        )
    if completed.returncode not in LOCUST_COMPLETED:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise LoadTestError(f"locust exited with {completed.returncode}; its log ({log_path}) ends with:\n{tail}")
    return read_totals(config.totals_file)


def run_loadtest(config: LoadTestConfig) -> int:
    """Run, report, and return the exit status: 0 when every objective was met, 1 otherwise."""
    totals = run_locust(config)
    missed = violations(totals, config.objectives)
    summary = {
        "config": {**asdict(config), "out_dir": str(config.out_dir)},
        "totals": {**asdict(totals), "failure_ratio": totals.failure_ratio},
        "violations": missed,
        "passed": not missed,
    }
    (config.out_dir / SUMMARY).write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
    print(
        f"{totals.requests} requests, {totals.failures} failed ({totals.failure_ratio:.2%}), {totals.rps:.1f} req/s, "
        f"p50 {totals.p50_ms:.0f} ms, p95 {totals.p95_ms:.0f} ms, p99 {totals.p99_ms:.0f} ms"
    )
    for line in totals.failure_lines:
        print(f"  failure: {line}")
    print(f"report: {config.out_dir / HTML_REPORT}, CSV: {config.out_dir / CSV_PREFIX}_*.csv")
    if missed:
        print("objectives missed: " + "; ".join(missed))
        return 1
    print("all objectives met")
    return 0
