"""``digits benchmark`` from the command line: options, refusals, a quick run; from a checkout wherever it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench.benchmark import PREVIOUS_REF_TARGETS, TARGETS, default_targets
from digits_cli.main import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["benchmark", "--targets", "gateway,nginx"], "unknown target nginx"),
        (["benchmark", "--workloads", "jpeg"], "unknown workload jpeg"),
        (["benchmark", "--connections", "0"], "connection counts"),
        (["benchmark", "--server-cpus", "one"], "is not like 1 or 0,1"),
        (["benchmark", "--targets", "gateway-previous", "--previous-ref", "no-such-ref"], "is no commit here"),
        (["benchmark", "--targets", "gateway,gateway-previous"], "gateway-previous run an earlier commit"),
    ],
)
def test_bad_options_are_refused_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_without_a_previous_ref_a_default_run_leaves_the_previous_release_out() -> None:
    assert PREVIOUS_REF_TARGETS and not PREVIOUS_REF_TARGETS & set(default_targets(None))
    assert default_targets("main~5") == tuple(TARGETS)


@pytest.mark.bench
def test_a_quick_benchmark_of_one_target_writes_both_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["benchmark", "--quick", "--targets", "fastapi-echo", "--workloads", "pixels", "--duration", "1",
            "--warmup", "0", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "fastapi-echo" in printed and "req/s" in printed
    data = orjson.loads((tmp_path / "benchmark.json").read_bytes())
    assert [row["connections"] for row in data["measurements"]] == [1, 32]
    assert "| fastapi-echo | 32 |" in (tmp_path / "benchmark.md").read_text()


def test_the_digits_command_finds_the_benchmark_of_its_checkout_from_any_folder(tmp_path: Path) -> None:
    digits = Path(sys.executable).with_name("digits")
    result = subprocess.run(
        [str(digits), "benchmark", "--help"], cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120
    )
    assert "--previous-ref REF" in result.stdout


def test_python_dash_m_bench_is_digits_benchmark() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "--help"], capture_output=True, text=True, check=True)
    assert "--previous-ref REF" in result.stdout and "--quick" in result.stdout
