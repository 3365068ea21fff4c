"""The README and the docs it links keep telling the truth: error codes, files named, links, and examples run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ops.local_servers import ServerProcess
from service.core.errors import ErrorCode
from tests.doc_examples import check_python_example

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = {path.relative_to(ROOT).as_posix(): path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
API = DOCS["docs/api.md"]


def test_the_readme_is_read_in_five_minutes() -> None:
    lines = README.count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move sections into docs/ and link them"


def test_every_docs_link_in_the_readme_resolves() -> None:
    linked = re.findall(r"\]\((docs/[^)#\s]+)(?:#[^)]*)?\)", README)
    assert "docs/api.md" in linked and "docs/settings.md" in linked
    assert sorted(path for path in linked if not (ROOT / path).is_file()) == []


def headings(text: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    titles = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.DOTALL), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in titles}


@pytest.mark.parametrize("name", ["README.md", *DOCS])
def test_every_link_between_the_docs_resolves(name: str) -> None:
    text = README if name == "README.md" else DOCS[name]
    base = (ROOT / name).parent
    broken = []
    for target, anchor in re.findall(r"\]\((?!https?:)([^)#\s]*)(?:#([^)\s]+))?\)", text):
        path = (base / target).resolve() if target else ROOT / name
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in headings(path.read_text()):
            broken.append(f"{target}#{anchor}")
    assert broken == []


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_error_code_is_documented_with_its_status(code: ErrorCode) -> None:
    assert f"| `{code.value}` | {code.status} |" in API


def test_the_two_commands() -> None:
    assert "`make serve`" in README and "`make test`" in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


@pytest.mark.parametrize("name", ["README.md", *DOCS])
def test_every_file_the_docs_name_exists(name: str) -> None:
    text = README if name == "README.md" else DOCS[name]
    named = set(
        re.findall(
            r"(?<![\w/.-])((?:bench|loadtest|model|service|ops|digits_cli|deploy|docs|tests|\.ci)/[\w./-]*\w)", text
        )
    )
    if name == "README.md":
        assert named, "the README names no project files"
    assert sorted(path for path in named if not (ROOT / path).exists()) == []


def test_the_triton_client_example_prints_what_the_api_doc_says(gateway: ServerProcess) -> None:
    section = API.split("## `/v2`: KServe / Triton clients", 1)[1].split("\n## ", 1)[0]
    check_python_example(section, 'url="127.0.0.1:8000"', f'url="{gateway.url.removeprefix("http://")}"')


def test_the_readme_curl_example_classifies_its_digit(gateway: ServerProcess) -> None:
    tour = README.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    (command,) = re.findall(r"```bash\n(curl .*?)\n```", tour, re.DOTALL)
    assert "http://127.0.0.1:8000/" in command, "the example no longer names the server it talks to"
    script = command.replace("http://127.0.0.1:8000/", f"{gateway.url}/")
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    (prediction,) = json.loads(result.stdout)["predictions"]
    assert prediction["label"] == 7  # MNIST test digit 17
    assert [entry["label"] for entry in prediction["top_k"]][:1] == [7] and len(prediction["top_k"]) == 3


def walkthrough_commands() -> list[tuple[list[str], list[str]]]:
    """Each ``digits`` command of the README's walk-through: its subcommand words and the options it uses."""
    section = README.split("## Rolling out a new version", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    commands = []
    for line in block.splitlines():
        for words in re.findall(r"(?:^|[;&|] *)digits ([^#&;|]*)", line):
            tokens = words.split()
            subcommand = [t for t in tokens[:2] if re.fullmatch(r"[a-z][a-z-]*", t)]
            commands.append((subcommand, [t for t in tokens if t.startswith("--")]))
    return commands


def test_the_walkthrough_names_real_commands_and_options() -> None:
    commands = walkthrough_commands()
    assert [words[0] for words, _ in commands] == ["api-key", "serve", "train", "rollout", "rollout"]
    for words, options in commands:
        command = [sys.executable, "-m", "digits_cli.main", *words, "--help"]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert [option for option in options if option not in result.stdout] == [], words
