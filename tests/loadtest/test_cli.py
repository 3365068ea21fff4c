"""``digits loadtest`` from the command line: options and refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest

from digits_cli.main import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["loadtest", "--max-failure-ratio", "2"], "--max-failure-ratio is a fraction"),
        (["loadtest", "--host", "localhost:8000"], "--host must be a URL"),
    ],
)
def test_bad_options_are_refused_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_python_dash_m_loadtest_runs_the_load_test_and_leaves_the_benchmark_to_bench() -> None:
    result = subprocess.run([sys.executable, "-m", "loadtest", "--help"], capture_output=True, text=True, check=True)
    assert "loadtest" in result.stdout and "benchmark" not in result.stdout
