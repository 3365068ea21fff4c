"""The ``digits`` command outside the served package: ``digits serve`` needs neither the load-test tools nor
TorchServe, as in the gateway image, which installs only the runtime dependencies and ships no ``loadtest``; no
installed package ships the benchmark (``bench``)."""

from __future__ import annotations

import subprocess
import sys

import orjson

# In a fresh interpreter: build the whole parser, parse a serve command line, and list what got imported.
PROBE = """
import sys, orjson
{prelude}
from digits_cli.main import build_parser
parser = build_parser()
args = parser.parse_args(["serve", "--port", "9000"])
commands = sorted(parser._subparsers._group_actions[0].choices)
loaded = sorted({{name.split(".")[0] for name in sys.modules}} & {{"locust", "ts", "model_archiver", "fastapi"}})
print(orjson.dumps({{"port": args.port, "commands": commands, "loaded": loaded}}).decode())
"""


def probe(prelude: str = "") -> dict[str, object]:
    command = [sys.executable, "-c", PROBE.format(prelude=prelude)]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)
    answer: dict[str, object] = orjson.loads(result.stdout)
    return answer


def test_the_command_line_imports_neither_locust_nor_torchserve_nor_the_web_app() -> None:
    answer = probe()
    assert answer["port"] == 9000 and {"serve", "benchmark", "loadtest", "torchserve"} <= set(answer["commands"])
    assert answer["loaded"] == []


def test_without_the_load_test_packages_serve_still_works_and_only_benchmark_stays_to_say_where_it_runs() -> None:
    answer = probe(prelude="sys.modules['loadtest'] = sys.modules['bench'] = None  # as if they were not installed")
    assert answer["port"] == 9000 and "serve" in answer["commands"]
    assert not {"loadtest", "soak"} & set(answer["commands"]) and "benchmark" in answer["commands"]


def test_without_the_bench_package_digits_benchmark_says_it_runs_from_a_checkout() -> None:
    code = "import sys; sys.modules['bench'] = None; from digits_cli.main import main; sys.exit(main(sys.argv[1:]))"
    command = [sys.executable, "-c", code, "benchmark", "--quick", "--targets", "gateway"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("digits benchmark: the benchmark runs from a source checkout") and "make peers-venv" in line
