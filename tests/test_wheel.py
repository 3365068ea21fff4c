"""The wheel, built for real from this checkout: the package without the side-by-side benchmark, whose command
then says where it runs."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of the checkout's tracked files, built in a copy so the checkout gets no build/ folder."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes((ROOT / name).read_bytes())
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    subprocess.run(command, cwd=source, capture_output=True, check=True, timeout=240)
    (built,) = out.glob("digits-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_ships_the_package_and_no_benchmark_or_peer_code(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if not name.startswith("digits-")}
    assert packages == {"digits_cli", "loadtest", "model", "ops", "service"}
    assert [name for name in names if "peer" in name or name.startswith("bench/")] == []
    assert {"loadtest/locustfile.py", "loadtest/soak.py", "model/artifacts/digits.pt"} <= set(names)


@pytest.mark.slow
def test_digits_benchmark_from_the_wheel_says_it_runs_from_a_checkout(wheel: Path, tmp_path: Path) -> None:
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    env = {**os.environ, "PYTHONPATH": str(installed)}
    probe = "import importlib.util, digits_cli; print(digits_cli.__file__, importlib.util.find_spec('bench'))"
    found = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert found.stdout.split() == [str(installed / "digits_cli" / "__init__.py"), "None"]
    command = [sys.executable, "-m", "digits_cli.main", "benchmark", "--quick", "--targets", "gateway"]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "digits benchmark: the benchmark runs from a source checkout, not an installed package: git clone "
        "<the digits repository>; cd digits; make peers-venv; .venv/bin/digits benchmark"
    ]
