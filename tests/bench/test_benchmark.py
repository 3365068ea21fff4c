"""The side-by-side benchmark, run for real with short cells: every target, both workloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.benchmark import (
    TARGETS,
    BenchmarkConfig,
    _measure_target,
    median_rounds,
    parse_cpus,
    rotated,
    run_benchmark,
)
from bench.report import to_markdown
from bench.results import BenchmarkRun, Measurement
from bench.targets import BenchContext, EchoTarget, NaiveTarget, ProcessTarget, TargetError
from bench.wrk import Wrk
from loadtest.checks import prediction_problem
from loadtest.processes import process_tree
from loadtest.samples import load_samples
from loadtest.workloads import HttpRequest, Workload

pytestmark = pytest.mark.bench

LOCAL_TARGETS = ("model-loop", "fastapi-echo", "fastapi-naive", "gateway")


def test_every_local_target_is_measured_at_every_connection_count(artifact: Path, tmp_path: Path) -> None:
    config = BenchmarkConfig(
        targets=LOCAL_TARGETS,
        connections=(1, 4),
        duration_s=1,
        warmup_s=0,
        rounds=1,
        artifact=artifact,
        log_dir=tmp_path,
    )
    run = run_benchmark(config, progress=lambda line: None)
    assert run.skipped == []
    assert len(run.measurements) == config.cells == 16
    for row in run.measurements:
        assert row.requests > 0 and row.rps > 0, row
        assert row.errors == 0, row
        assert row.p50_ms <= row.p95_ms <= row.p99_ms <= row.max_ms, row
        assert row.server_cpu > 0, row
        assert (row.generator_cpu is None) == (row.target == "model-loop"), row
    markdown = to_markdown(run)
    for name in LOCAL_TARGETS:
        assert f"| {name} | 4 |" in markdown


def test_rounds_interleave_targets_and_report_the_median_round(artifact: Path, tmp_path: Path) -> None:
    config = BenchmarkConfig(
        targets=("fastapi-echo", "model-loop"), workloads=(Workload.pixels,), connections=(1,), duration_s=1,
        warmup_s=0, rounds=3, artifact=artifact, log_dir=tmp_path,
    )  # fmt: skip
    lines: list[str] = []
    run = run_benchmark(config, progress=lines.append)
    assert [row.target for row in run.measurements] == ["fastapi-echo", "model-loop"]
    for row in run.measurements:
        assert len(row.round_rps) == 3, row
        assert row.rps == sorted(row.round_rps)[1], row
    measured = [line.split()[0] for line in lines if line.split()[0] in config.targets]
    assert measured == ["fastapi-echo", "model-loop", "model-loop", "fastapi-echo", "fastapi-echo", "model-loop"]
    assert run.settings["rounds"] == 3


def cell(target: str, rps: float, p99: float) -> Measurement:
    return Measurement(target, "pixels", 8, int(rps), 1.0, rps, 0, p99 / 2, p99, p99, p99, 1.0, 0.1)


def test_each_round_starts_one_target_further_along() -> None:
    targets = ["a", "b", "c"]
    assert [rotated(targets, by) for by in range(4)] == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], targets]
    assert rotated([], 2) == []


def test_the_median_round_is_kept_whole() -> None:
    rows = [cell("a", 100, 9), cell("b", 50, 1), cell("a", 300, 7), cell("b", 70, 2), cell("a", 200, 5)]
    a, b = median_rounds(rows)
    assert (a.target, a.rps, a.p99_ms, a.round_rps) == ("a", 200, 5, (100, 300, 200))
    assert (b.target, b.rps, b.p99_ms, b.round_rps) == ("b", 50, 1, (50, 70))  # the lower of an even count
    assert median_rounds(rows[:2]) == rows[:2]  # one round: rows as measured


def test_torchserve_direct_and_behind_the_gateway(artifact: Path, tmp_path: Path) -> None:
    config = BenchmarkConfig(
        targets=("torchserve", "gateway-torchserve"), connections=(2,), duration_s=1, warmup_s=0, rounds=1,
        artifact=artifact, log_dir=tmp_path,
    )  # fmt: skip
    run = run_benchmark(config, progress=lambda line: None)
    measured = {(row.target, row.workload) for row in run.measurements}
    assert measured == {("torchserve", "pixels"), ("gateway-torchserve", "pixels"), ("gateway-torchserve", "png")}
    assert all(row.errors == 0 for row in run.measurements)
    assert [(item.target, item.workload) for item in run.skipped] == [("torchserve", "png")]
    assert "pixels" in run.skipped[0].reason


def test_the_oip_workload_runs_on_the_gateway_only(artifact: Path, tmp_path: Path) -> None:
    config = BenchmarkConfig(
        targets=("fastapi-echo", "gateway"), workloads=(Workload.pixels, Workload.oip), connections=(2,),
        duration_s=1, warmup_s=0, rounds=1, artifact=artifact, log_dir=tmp_path,
    )  # fmt: skip
    run = run_benchmark(config, progress=lambda line: None)
    measured = {(row.target, row.workload) for row in run.measurements}
    assert measured == {("fastapi-echo", "pixels"), ("gateway", "pixels"), ("gateway", "oip")}
    assert all(row.errors == 0 and row.requests > 0 for row in run.measurements)  # wrk sent the header length
    assert [(item.target, item.workload) for item in run.skipped] == [("fastapi-echo", "oip")]
    assert "/v1 only" in run.skipped[0].reason
    assert "## Workload `oip`" in to_markdown(run)


@pytest.mark.parametrize("target_class", [EchoTarget, NaiveTarget])
def test_peers_run_as_many_worker_processes_as_the_gateway(
    target_class: type[ProcessTarget], artifact: Path, tmp_path: Path
) -> None:
    descendants = {}
    with Wrk() as wrk:
        for workers in (1, 2):
            context = BenchContext(
                artifact, load_samples(), tmp_path, wrk, duration_s=1, warmup_s=0, torch_threads=1, http_workers=workers
            )
            target = target_class()
            target.start(context)
            try:
                target.measure(Workload.pixels, 2, context)
                descendants[workers] = len(process_tree(target.server_pids()[0])) - 1
            finally:
                target.stop()
    assert descendants[2] >= descendants[1] + 2, descendants


class EchoPretendingToPredict(EchoTarget):
    """The echo server judged as a model server: its answers carry no predictions."""

    name = "echo-as-model"

    def check(self, request: HttpRequest, status: int, body: bytes) -> str | None:
        return prediction_problem(status, body, [request.label])


def test_a_target_with_wrong_answers_is_skipped_not_measured(artifact: Path, tmp_path: Path) -> None:
    config = BenchmarkConfig(targets=("fastapi-echo",), connections=(1,), duration_s=1, warmup_s=0, artifact=artifact)
    run = BenchmarkRun(settings={}, machine={}, targets={})
    target = EchoPretendingToPredict()
    with Wrk() as wrk:
        context = BenchContext(artifact, load_samples(), tmp_path, wrk, duration_s=1, warmup_s=0, torch_threads=1)
        target.start(context)
        try:
            with pytest.raises(TargetError, match="not a predict response"):
                target.measure(Workload.pixels, 1, context)
            _measure_target(target, config, context, run, progress=lambda line: None)
        finally:
            target.stop()
    assert run.measurements == []
    assert [(item.target, item.workload) for item in run.skipped] == [
        ("echo-as-model", "pixels"),
        ("echo-as-model", "png"),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"targets": ("nginx",)}, "unknown or no target"),
        ({"connections": (0,)}, "connection counts"),
        ({"duration_s": 0}, "--duration"),
        ({"rounds": 0}, "--rounds"),
        ({"artifact": Path("/nonexistent/digits.pt")}, "does not exist"),
    ],
)
def test_bad_configuration_is_refused(changes: dict[str, object], message: str, artifact: Path) -> None:
    with pytest.raises(ValueError, match=message):
        BenchmarkConfig(**{"artifact": artifact, **changes})  # type: ignore[arg-type]


def test_cpu_lists() -> None:
    assert parse_cpus("all") is None
    assert parse_cpus("0") == frozenset({0})
    assert parse_cpus("0-1") == frozenset({0, 1})
    with pytest.raises(ValueError, match="like 1 or 0,1"):
        parse_cpus("first")
    with pytest.raises(ValueError, match="cannot use"):
        parse_cpus("4095")


def test_targets_run_ceilings_first_and_ours_last() -> None:
    assert list(TARGETS) == [
        "model-loop", "model-loop-previous", "model-loop-previous-release", "fastapi-echo", "fastapi-naive",
        "litserve", "bentoml", "gateway-previous", "gateway-previous-release", "gateway", "gateway-drift-off",
        "gateway-shadow",
        "gateway-traced", "gateway-traced-unsampled", "gateway-traced-nice-receiver",
        "torchserve", "gateway-torchserve",
    ]  # fmt: skip
