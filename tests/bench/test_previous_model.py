"""Earlier models out of git, for the benchmark's side-by-side model loop."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.previous import REPO, PreviousError, commits_changing, file_at
from bench.previous_model import PreviousModelLoopTarget, PreviousReleaseModelLoopTarget, previous_version_commit
from bench.targets import BenchContext, TargetError
from loadtest.workloads import Workload
from model.card import file_sha256, load_card

pytestmark = pytest.mark.bench
OLD_MODEL_LOOP = REPO / "loadtest" / "model_loop.py"


def newest_commit_with_the_old_layout() -> str:
    """The newest commit whose model loop is still ``loadtest/model_loop.py``, before the benchmark left loadtest."""
    try:
        (newest, *_) = commits_changing(OLD_MODEL_LOOP)
    except (PreviousError, ValueError) as exc:
        pytest.skip(f"no git history here: {exc}")
    try:
        file_at(newest, OLD_MODEL_LOOP)
    except PreviousError:
        return f"{newest}^"  # the commit that moved it
    return newest


@pytest.fixture
def context(artifact: Path, tmp_path: Path) -> BenchContext:
    return BenchContext(
        artifact=artifact,
        samples=[],
        log_dir=tmp_path,
        wrk=None,  # type: ignore[arg-type]
        duration_s=1,
        warmup_s=0,
        torch_threads=1,
        previous_ref=newest_commit_with_the_old_layout(),
    )


def test_the_previous_version_is_another_version_of_the_card(artifact: Path) -> None:
    try:
        commit, version = previous_version_commit()
    except TargetError as exc:
        pytest.skip(f"no git history here: {exc}")
    assert len(commit) == 40
    assert version != load_card(artifact).version


def test_the_previous_versions_artifact_runs_in_this_code(artifact: Path, context: BenchContext) -> None:
    target = PreviousModelLoopTarget()
    try:
        target.start(context)
    except TargetError as exc:
        pytest.skip(f"no git history here: {exc}")
    previous = target.artifact(context)
    card = load_card(previous)  # an older card still loads
    assert card.version != load_card(artifact).version
    assert file_sha256(previous) == card.sha256
    assert torch.jit.load(str(previous))(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert target.workdir(context) is None
    measurement = target.measure(Workload.pixels, 4, context)
    assert measurement.target == "model-loop-previous" and measurement.rps > 0


def test_the_previous_release_runs_its_own_code_and_artifact(context: BenchContext) -> None:
    target = PreviousReleaseModelLoopTarget()
    try:
        tree = target.workdir(context)
    except TargetError as exc:
        pytest.skip(f"no git history here: {exc}")
    assert tree is not None and (tree / "loadtest" / "model_loop.py").is_file()
    previous = target.artifact(context)
    assert previous.is_relative_to(tree) and file_sha256(previous) == load_card(previous).sha256
    measurement = target.measure(Workload.pixels, 1, context)
    assert measurement.requests > 0 and measurement.p50_ms > 0
