"""The Locust users, run headless by ``digits loadtest`` against real servers for a few seconds."""

from __future__ import annotations

from pathlib import Path

import orjson

from loadtest.runner import HTML_REPORT, SUMMARY, TOTALS, LoadTestConfig, Objectives, run_loadtest
from tests.servers import ServerProcess, echo_peer

REQUEST_NAMES = ("upload png", "json pixels", "json batch of 16", "json feature maps")


def test_smoke_run_against_the_gateway_has_no_failures(gateway: ServerProcess, tmp_path: Path) -> None:
    # Six users: the sum of the class weights, so every user class gets one.
    config = LoadTestConfig(
        host=gateway.url, users=6, spawn_rate=6, duration_s=3, out_dir=tmp_path, objectives=Objectives(min_rps=1)
    )
    assert run_loadtest(config) == 0, (tmp_path / "locust.log").read_text()[-3000:]
    summary = orjson.loads((tmp_path / SUMMARY).read_bytes())
    assert summary["passed"] is True
    assert summary["totals"]["requests"] > 0
    assert summary["totals"]["failures"] == 0
    stats = (tmp_path / "locust_stats.csv").read_text()
    for name in REQUEST_NAMES:
        assert name in stats, f"no {name!r} requests were made"
    assert (tmp_path / HTML_REPORT).stat().st_size > 10_000


def test_wrong_answers_count_as_failures_and_fail_the_run(tmp_path: Path) -> None:
    # The echo peer answers 200 with the request itself: no predictions, so every request must fail.
    with echo_peer(tmp_path) as url:
        config = LoadTestConfig(
            host=url, users=2, spawn_rate=2, duration_s=2, out_dir=tmp_path, user_classes=("PixelsUser",)
        )
        assert run_loadtest(config) == 1
    summary = orjson.loads((tmp_path / SUMMARY).read_bytes())
    assert summary["totals"]["requests"] > 0
    assert summary["totals"]["failures"] == summary["totals"]["requests"]
    assert any("not a predict response" in line for line in summary["totals"]["failure_lines"])
    assert any(v.startswith("failure ratio") for v in summary["violations"])
    assert (tmp_path / TOTALS).is_file()
