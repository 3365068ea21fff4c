"""LitServe and BentoML as benchmark targets, for real: their own processes, both workloads, checked answers."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from bench.benchmark import BenchmarkConfig, run_benchmark
from bench.peer_targets import BentoMLTarget, LitServeTarget, PeerTarget
from bench.targets import BenchContext, TargetError
from bench.wrk import Wrk
from loadtest.processes import process_tree
from loadtest.samples import load_samples
from loadtest.workloads import HttpRequest, Workload

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("target_class", [LitServeTarget, BentoMLTarget])
def test_a_peer_answers_both_workloads_with_a_model_process_per_gateway_process(
    target_class: type[PeerTarget], artifact: Path, tmp_path: Path
) -> None:
    target = target_class()
    with Wrk() as wrk:
        context = BenchContext(
            artifact, load_samples(), tmp_path, wrk, duration_s=1, warmup_s=0, torch_threads=1, http_workers=2
        )
        target.start(context)
        try:
            rows = [target.measure(workload, 4, context) for workload in (Workload.pixels, Workload.png)]
            tree = process_tree(target.server_pids()[0])
            with pytest.raises(TargetError, match="HTTP 4"):
                target.probe(HttpRequest("POST", "/v1/predict", "application/json", b'{"instances": []}', 0))
        finally:
            target.stop()
    for row in rows:
        assert row.requests > 0 and row.errors == 0, row
        assert row.server_cpu > 0, row
    # two model processes and two HTTP processes, besides the one started
    assert len(tree) >= 5, tree
    assert not running(tree, within_s=10), "processes outlived the target"


def running(pids: list[int], within_s: float) -> list[int]:
    """Those of ``pids`` still running (zombies whose parent is gone do not count) after up to ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        alive = []
        for pid in pids:
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def test_peers_without_their_venv_are_skipped_with_the_reason(artifact: Path, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    config = BenchmarkConfig(
        targets=("fastapi-echo", "litserve", "bentoml"), workloads=(Workload.pixels,), connections=(1,),
        duration_s=1, warmup_s=0, rounds=2, artifact=artifact, log_dir=tmp_path, peers_venv=tmp_path / "a-file" / "v",
    )  # fmt: skip
    run = run_benchmark(config, progress=lambda line: None)
    assert [row.target for row in run.measurements] == ["fastapi-echo"]
    assert sorted(item.target for item in run.skipped) == ["bentoml", "litserve"]
    assert all("could not make" in item.reason for item in run.skipped)


def test_the_descriptions_name_the_pinned_versions_and_the_knobs() -> None:
    assert "LitServe 0.2.19" in LitServeTarget.description and "batch_timeout" in LitServeTarget.description
    assert "BentoML 1.4.29" in BentoMLTarget.description and "max_latency_ms" in BentoMLTarget.description
