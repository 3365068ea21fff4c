"""The previous gateway: a commit's packages exported and served next to today's, so a regression shows."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from loadtest.benchmark import BenchmarkConfig, run_benchmark
from loadtest.previous import PREVIOUS_REF, REPO, PreviousError, export, resolve
from loadtest.report import to_markdown
from loadtest.samples import load_samples
from loadtest.targets import BenchContext, PreviousGatewayTarget, PreviousReleaseGatewayTarget
from loadtest.workloads import Workload
from loadtest.wrk import Wrk


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


@pytest.mark.skipif(_shallow(), reason="a shallow clone lacks the older commits")
def test_the_default_ref_is_a_commit_of_this_repository() -> None:
    assert resolve(PREVIOUS_REF) == PREVIOUS_REF


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
