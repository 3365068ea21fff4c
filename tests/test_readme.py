"""The README keeps telling the truth about settings, error codes and the two commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ops.local_servers import ServerProcess
from ops.settings import OpsSettings
from service.core.errors import ErrorCode
from service.core.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("name", sorted({*Settings.model_fields, *OpsSettings.model_fields}))
def test_every_setting_is_documented(name: str) -> None:
    assert f"`DIGITS_{name.upper()}`" in README


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_documented_with_its_status(code: ErrorCode) -> None:
    assert f"| `{code.value}` | {code.status} |" in README


def test_the_two_commands() -> None:
    assert "`make serve`" in README and "`make test`" in README
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "make test" in ci


def test_every_file_the_readme_names_exists() -> None:
    root = Path(__file__).resolve().parent.parent
    named = set(
        re.findall(
            r"(?<![\w/.-])((?:bench|loadtest|model|service|ops|digits_cli|deploy|docs|tests|\.ci)/[\w./-]*\w)", README
        )
    )
    assert named, "the README names no project files"
    assert sorted(path for path in named if not (root / path).exists()) == []


def test_the_triton_client_example_prints_what_the_readme_says(gateway: ServerProcess) -> None:
    section = README.split("## KServe / Triton clients", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    (printed,) = re.findall(r"```text\n(.*?)```", section, re.DOTALL)
    script = code.replace('url="127.0.0.1:8000"', f'url="{gateway.url.removeprefix("http://")}"')
    assert script != code, "the example no longer names the server it talks to"
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed
