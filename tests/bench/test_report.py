"""The benchmark report: ratios, tables, skipped targets and the gateway's targets, from a known run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson

from bench.report import objective_checks, ratios, to_markdown, write_report
from bench.results import BenchmarkRun, Measurement, Skipped


def row(
    target: str, workload: str, connections: int, rps: float, p99: float = 20.0, wrk: float | None = 0.1
) -> Measurement:
    return Measurement(
        target=target, workload=workload, connections=connections, requests=int(rps * 5), duration_s=5.0, rps=rps,
        errors=0, p50_ms=p99 / 4, p95_ms=p99 / 2, p99_ms=p99, max_ms=p99 * 2, server_cpu=1.5, generator_cpu=wrk,
    )  # fmt: skip


def sample_run() -> BenchmarkRun:
    run = BenchmarkRun(
        settings={"duration_s": 5, "warmup_s": 1, "server_cpus": "all", "generator_cpus": [0], "torch_threads": 1,
                  "wrk_threads": 1},
        machine={"date": "2026-01-01 00:00 UTC", "cpu": "Test CPU", "logical_cpus": 2, "memory_gib": 24.0,
                 "os": "Linux", "python": "3.11", "packages": {"torch": "2.5"}, "wrk": "wrk 4.1.0",
                 "load_average_before": [0.1, 0.1, 0.1], "load_average_after": [1.5, 0.5, 0.2]},
        targets={"model-loop": "the model in a loop", "gateway": "ours", "torchserve": "theirs"},
    )  # fmt: skip
    run.measurements += [
        row("model-loop", "pixels", 32, 8000.0, wrk=None),
        row("gateway", "pixels", 32, 4000.0, p99=20.0),
        row("torchserve", "pixels", 32, 2000.0, p99=40.0),
        row("gateway", "png", 32, 1500.0, p99=30.0),
    ]
    run.skipped.append(Skipped("torchserve", "png", "takes pixels only"))
    return run


def test_ratios_are_against_the_gateway_and_the_model_loop() -> None:
    run = sample_run()
    torchserve = run.find("torchserve", "pixels", 32)
    assert torchserve is not None
    assert ratios(run, torchserve) == {"vs_gateway": 0.5, "of_ceiling": 0.25}
    gateway_png = run.find("gateway", "png", 32)
    assert gateway_png is not None
    assert ratios(run, gateway_png) == {"vs_gateway": 1.0, "of_ceiling": None}


def test_the_markdown_has_a_row_per_measurement_and_says_what_was_skipped() -> None:
    markdown = to_markdown(sample_run())
    assert "| torchserve | 32 | 2,000 | - | 10.0 | 20.0 | 40.0 | 0.50x | 25% | 0 | 1.50 | 0.10 |" in markdown
    assert "| model-loop | 32 | 8,000 img/s |" in markdown
    assert "- torchserve not measured: takes pixels only" in markdown
    assert "Test CPU (2 logical CPUs" in markdown
    assert "pinned to CPU [0]" in markdown


def test_the_gateway_targets_are_checked() -> None:
    checks = objective_checks(sample_run())
    assert checks[0] == "pixels at 32 connections: >= 3,000 req/s, p99 <= 25 ms: 4,000 req/s, p99 20.0 ms: met"
    assert checks[1].endswith("1,500 req/s, p99 30.0 ms: MISSED")


def test_both_files_are_written(tmp_path: Path) -> None:
    markdown, data = write_report(sample_run(), tmp_path / "reports")
    assert markdown.read_text().startswith("# Benchmark")
    parsed = orjson.loads(data.read_bytes())
    assert len(parsed["measurements"]) == 4
    assert parsed["measurements"][2]["vs_gateway"] == 0.5
    assert parsed["skipped"] == [{"target": "torchserve", "workload": "png", "reason": "takes pixels only"}]


def test_rounds_show_their_spread() -> None:
    run = sample_run()
    run.settings["rounds"] = 3
    run.measurements[1] = replace(run.measurements[1], round_rps=(3900.0, 4000.0, 4400.0))
    markdown = to_markdown(run)
    assert "3 rounds" in markdown
    assert "| gateway | 32 | 4,000 | 3,900-4,400 |" in markdown
    assert "| torchserve | 32 | 2,000 | - |" in markdown
