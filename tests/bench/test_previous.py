"""The previous gateway: a commit's packages exported and served next to today's, so a regression shows."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from bench.benchmark import BenchmarkConfig, run_benchmark
from bench.previous import REPO, PreviousError, export, resolve
from bench.report import to_markdown
from bench.targets import (
    BenchContext,
    PreviousGatewayTarget,
    PreviousReleaseGatewayTarget,
    TargetError,
    model_loop_module,
)
from bench.wrk import Wrk
from loadtest.samples import load_samples
from loadtest.workloads import Workload

pytestmark = pytest.mark.bench


def _shallow() -> bool:
    result = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--is-shallow-repository"], capture_output=True)
    return result.stdout.strip() != b"false"


def test_a_commit_is_exported_once_with_its_packages(tmp_path: Path) -> None:
    tree = export("HEAD", tmp_path)
    assert tree.name == f"digits-{resolve('HEAD')[:12]}"
    for package in ("digits_cli", "service", "model"):
        assert (tree / package / "__init__.py").is_file(), package
    marker = tree / "digits_cli" / "exported-once"
    marker.write_text("")
    assert export("HEAD", tmp_path) == tree and marker.exists()


def test_an_unknown_ref_is_refused(artifact: Path) -> None:
    with pytest.raises(PreviousError, match="no-such-ref"):
        resolve("no-such-ref")
    with pytest.raises(ValueError, match="is no commit here"):
        BenchmarkConfig(targets=("gateway-previous",), artifact=artifact, previous_ref="no-such-ref")


def test_there_is_no_default_ref_the_previous_targets_ask_for_one(artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gateway-previous run an earlier commit: name it with --previous-ref REF"):
        BenchmarkConfig(targets=("gateway", "gateway-previous"), artifact=artifact)
    context = BenchContext(artifact, [], tmp_path, None, duration_s=1, warmup_s=0, torch_threads=1)  # type: ignore[arg-type]
    with pytest.raises(TargetError, match="--previous-ref REF"):
        PreviousGatewayTarget().start(context)


def test_the_model_loop_is_run_from_where_the_commit_keeps_it(tmp_path: Path) -> None:
    assert model_loop_module(None) == "bench.model_loop"
    tree = export("HEAD", tmp_path)
    assert (tree / model_loop_module(tree).replace(".", "/")).with_suffix(".py").is_file()


def served_on_head(target: PreviousGatewayTarget, artifact: Path, tmp_path: Path) -> tuple[Path, list[bytes]]:
    """``target`` run with ``--previous-ref HEAD`` and measured once, without errors: its server's working folder
    and environment, read while it ran."""
    with Wrk() as wrk:
        context = BenchContext(
            artifact, load_samples(), tmp_path, wrk, duration_s=1, warmup_s=0, torch_threads=1, previous_ref="HEAD"
        )
        target.start(context)
        try:
            row = target.measure(Workload.pixels, 2, context)
            process = Path(f"/proc/{target.server_pids()[0]}")
            cwd, environment = Path(os.readlink(process / "cwd")), (process / "environ").read_bytes().split(b"\0")
        finally:
            target.stop()
    assert row.requests > 0 and row.errors == 0, row
    return cwd, environment


def test_the_previous_gateway_runs_its_own_code_and_is_measured(artifact: Path, tmp_path: Path) -> None:
    cwd, _ = served_on_head(PreviousGatewayTarget(), artifact, tmp_path)
    assert cwd == tmp_path / "gateway-previous" / f"digits-{resolve('HEAD')[:12]}"


def test_the_previous_release_serves_its_own_artifact(artifact: Path, tmp_path: Path) -> None:
    _, environment = served_on_head(PreviousReleaseGatewayTarget(), artifact, tmp_path)
    tree = tmp_path / "gateway-previous-release" / f"digits-{resolve('HEAD')[:12]}"
    assert f"DIGITS_ARTIFACT={tree / 'model' / 'artifacts' / 'digits.pt'}".encode() in environment


def test_the_report_names_the_previous_commit(artifact: Path, tmp_path: Path) -> None:
    config = BenchmarkConfig(
        targets=("gateway-previous",), workloads=(Workload.pixels,), connections=(1,), duration_s=1, warmup_s=0,
        rounds=1, artifact=artifact, log_dir=tmp_path, previous_ref="HEAD",
    )  # fmt: skip
    run = run_benchmark(config, progress=lambda line: None)
    assert [row.target for row in run.measurements] == ["gateway-previous"]
    assert (run.settings["previous_ref"], run.settings["previous_commit"]) == ("HEAD", resolve("HEAD"))
    assert f"is commit `{resolve('HEAD')}` (`HEAD`)" in to_markdown(run)
