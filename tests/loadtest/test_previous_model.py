"""The previous model version out of git, for the benchmark's side-by-side model loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from loadtest.previous_model import PreviousModelLoopTarget, PreviousReleaseModelLoopTarget, previous_version_commit
from loadtest.targets import BenchContext, TargetError
from loadtest.workloads import Workload
from model.card import file_sha256, load_card


@pytest.fixture
def context(artifact: Path, tmp_path: Path) -> BenchContext:
    return BenchContext(
        artifact=artifact,
        samples=[],
        log_dir=tmp_path,
        wrk=None,
        duration_s=1,
        warmup_s=0,
        torch_threads=1,  # type: ignore[arg-type]
    )


def started(target: PreviousModelLoopTarget, context: BenchContext) -> Iterator[PreviousModelLoopTarget]:
    try:
        target.start(context)
    except TargetError as exc:
        pytest.skip(f"no git history here: {exc}")
    yield target
    target.stop()


def test_the_previous_version_is_another_version_of_the_card(artifact: Path) -> None:
    try:
        commit, version = previous_version_commit(artifact)
    except TargetError as exc:
        pytest.skip(f"no git history here: {exc}")
    assert len(commit) == 40
    assert version != load_card(artifact).version


def test_the_previous_artifact_is_measured_and_cleaned_up(artifact: Path, context: BenchContext) -> None:
    target = PreviousModelLoopTarget()
    for running in started(target, context):
        previous = target.artifact(context)
        card = load_card(previous)  # an older card still loads
        assert card.version != load_card(artifact).version
        assert file_sha256(previous) == card.sha256
        assert torch.jit.load(str(previous))(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
        measurement = running.measure(Workload.pixels, 4, context)
        assert measurement.target == "model-loop-previous" and measurement.rps > 0
    assert not previous.exists()


def test_the_previous_release_runs_its_own_code(artifact: Path, context: BenchContext) -> None:
    target = PreviousReleaseModelLoopTarget()
    for running in started(target, context):
        root = target.code_root()
        assert root is not None and (root / "loadtest" / "model_loop.py").is_file()
        previous = target.artifact(context)
        assert previous.is_relative_to(root)
        assert load_card(previous).version != load_card(artifact).version
        measurement = running.measure(Workload.pixels, 1, context)
        assert measurement.requests > 0 and measurement.p50_ms > 0
    assert root is not None and not root.exists()
