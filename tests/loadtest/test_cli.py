"""``digits loadtest`` and ``digits benchmark`` from the command line: options, refusals, a quick run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from digits_cli.main import main


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["loadtest", "--max-failure-ratio", "2"], "--max-failure-ratio is a fraction"),
        (["loadtest", "--host", "localhost:8000"], "--host must be a URL"),
        (["benchmark", "--targets", "gateway,nginx"], "unknown target nginx"),
        (["benchmark", "--workloads", "jpeg"], "unknown workload jpeg"),
        (["benchmark", "--connections", "0"], "connection counts"),
        (["benchmark", "--server-cpus", "one"], "is not like 1 or 0,1"),
        (["benchmark", "--targets", "gateway-previous", "--previous-ref", "no-such-ref"], "is no commit here"),
    ],
)
def test_bad_options_are_refused_with_a_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


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


def test_python_dash_m_loadtest_has_both_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "loadtest", "--help"], capture_output=True, text=True, check=True)
    assert "loadtest" in result.stdout and "benchmark" in result.stdout
