"""Objectives, configuration and the Locust command of ``digits loadtest`` (runs are in test_loadtest_locustfile)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from loadtest.runner import (
    LOCUSTFILE,
    LoadTestConfig,
    LoadTestError,
    Objectives,
    Totals,
    locust_command,
    read_totals,
    violations,
)


def totals(**changes: float) -> Totals:
    values: dict[str, float] = {"requests": 1000, "failures": 0, "rps": 200.0, "p50_ms": 10, "p95_ms": 40, "p99_ms": 90}
    values.update(changes)
    return Totals(**values)  # type: ignore[arg-type]


def test_a_run_within_every_objective_has_no_violations() -> None:
    assert violations(totals(), Objectives(max_p99_ms=100, max_failure_ratio=0.0, min_rps=150)) == []


def test_each_missed_objective_is_reported() -> None:
    missed = violations(totals(failures=20, rps=50.0, p99_ms=700), Objectives(500, 0.01, 100))
    assert missed == [
        "p99 latency 700 ms > 500 ms",
        "failure ratio 0.0200 (20 of 1000) > 0.01",
        "throughput 50.0 req/s < 100 req/s",
    ]


def test_one_wrong_answer_misses_the_default_failure_objective() -> None:
    assert violations(totals(failures=1), Objectives()) == ["failure ratio 0.0010 (1 of 1000) > 0"]


def test_no_requests_is_a_violation_even_without_a_throughput_minimum() -> None:
    assert "no request completed" in violations(totals(requests=0, rps=0.0), Objectives(min_rps=0))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_p99_ms": 0}, "--max-p99-ms"),
        ({"max_failure_ratio": 1.5}, "--max-failure-ratio"),
        ({"min_rps": -1}, "--min-rps"),
    ],
)
def test_bad_objectives_are_refused(changes: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Objectives(**changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"host": "127.0.0.1:8000"}, "--host must be a URL"),
        ({"users": 0}, "must be positive"),
        ({"think_time_s": -1}, "--think-time"),
        ({"user_classes": ("AdminUser",)}, "unknown user class"),
    ],
)
def test_bad_configuration_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LoadTestConfig(**changes)  # type: ignore[arg-type]


def test_the_locust_command_is_headless_bounded_and_writes_csv_and_html(tmp_path: Path) -> None:
    config = LoadTestConfig(users=3, spawn_rate=1.5, duration_s=2.5, out_dir=tmp_path, user_classes=("PixelsUser",))
    command = locust_command(config)
    assert command[command.index("--locustfile") + 1] == str(LOCUSTFILE)
    assert "--headless" in command
    assert command[command.index("--run-time") + 1] == "3s"
    assert command[command.index("--csv") + 1] == str(tmp_path / "locust")
    assert command[command.index("--html") + 1] == str(tmp_path / "report.html")
    assert command[-1] == "PixelsUser"


def test_totals_come_from_the_file_the_locustfile_writes(tmp_path: Path) -> None:
    path = tmp_path / "totals.json"
    with pytest.raises(LoadTestError, match="no totals"):
        read_totals(path)
    path.write_bytes(
        orjson.dumps({"requests": 10, "failures": 1, "rps": 5.0, "p50_ms": 3, "p95_ms": 8, "p99_ms": 9,
                      "failure_lines": ["1 x POST json pixels: wrong label for 1 of 1 digits"]})
    )  # fmt: skip
    read = read_totals(path)
    assert (read.requests, read.failures, read.p99_ms, read.failure_ratio) == (10, 1, 9.0, 0.1)
    assert read.failure_lines == ("1 x POST json pixels: wrong label for 1 of 1 digits",)
