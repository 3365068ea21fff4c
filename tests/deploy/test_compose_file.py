"""docker-compose.yml and its override files: valid for a real Compose implementation, and the stack the
README promises. (tests/deploy/test_*_stack.py and test_scale_out.py run it.)

The validator is `docker compose` (the v2 plugin) when the docker CLI has it, else Debian's
`docker-compose` (1.29, which checks the file against its bundled compose-spec JSON schema and resolves
interpolation, merges and profiles). Neither needs a Docker engine for `config`.
"""

from __future__ import annotations

import itertools
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.monitoring.config import DEFAULT_PROMETHEUS_CONFIG, load_config
from tests.deploy.stack import readme_command

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
GPU_STACK = {"loadbalancer", "gateway", "torchserve", "prometheus", "grafana"}
CPU_STACK = {"gateway-cpu", "loadbalancer", "prometheus", "grafana"}
GPU_COMMAND, CPU_COMMAND = "docker compose up -d", "docker compose --profile cpu up -d"  # README.md
TORCHSERVE_ON_CPU = ROOT / "deploy" / "compose" / "torchserve-cpu.yml"
DEBIAN_PROMETHEUS = ROOT / "deploy" / "compose" / "debian-prometheus.yml"
API_KEYS = ROOT / "deploy" / "compose" / "api-keys.yml"


@pytest.fixture(scope="module")
def compose() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.skip(
            "no Compose implementation: install the Debian package docker-compose (or the docker compose plugin)"
        )
    return [legacy]


def env_file(tmp_path: Path, password: str) -> Path:
    """deploy/env.example as a user fills it in."""
    text = ENV_EXAMPLE.read_text().replace("GRAFANA_ADMIN_PASSWORD=\n", f"GRAFANA_ADMIN_PASSWORD={password}\n")
    path = tmp_path / "stack.env"
    path.write_text(text)
    return path


def published_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, published port, container port) of each entry, in either Compose's output style."""
    ports = []
    for port in service.get("ports", []):
        if isinstance(port, str):
            parts = port.split("/")[0].split(":")
            ports.append((parts[0] if len(parts) == 3 else "0.0.0.0", int(parts[-2]), int(parts[-1])))
        else:
            ports.append((port.get("host_ip", "0.0.0.0"), int(port["published"]), int(port["target"])))
    return ports


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) of each volume entry, in either Compose's output style."""
    entries = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            entries.append((source, target))
        else:
            entries.append((volume["source"], volume["target"]))
    return entries


def run_compose(
    compose: list[str], env: Path, *args: str, files: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Compose in the repository; with no ``files``, the files it reads by itself (with the override)."""
    command = [*compose, "--project-directory", str(ROOT), *(arg for file in files for arg in ("-f", str(file)))]
    return subprocess.run(
        [*command, "--env-file", str(env), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.fixture(scope="module")
def resolved(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The file as Compose resolves it, with both profiles on so that every service is listed."""
    env = env_file(tmp_path_factory.mktemp("compose"), "s3cret-from-env-file")
    result = run_compose(compose, env, "--profile", "cpu", "--profile", "gpu", "config")
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


def test_the_file_validates(compose: list[str], tmp_path: Path) -> None:
    result = run_compose(compose, env_file(tmp_path, "pw"), "config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_an_invalid_file_is_rejected(compose: list[str], tmp_path: Path) -> None:
    """The validator does fail: a healthcheck with a misspelt key."""
    broken = tmp_path / "docker-compose.yml"
    text = (ROOT / "docker-compose.yml").read_text()
    broken.write_text(text.replace("start_period: 120s", "start_perod: 120s", 1))
    command = [
        *compose,
        "--project-directory",
        str(ROOT),
        "-f",
        str(broken),
        "--env-file",
        str(env_file(tmp_path, "x")),
    ]
    result = subprocess.run([*command, "config", "--quiet"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "start_perod" in result.stdout + result.stderr


def test_grafana_has_no_default_admin_password(compose: list[str], tmp_path: Path) -> None:
    result = run_compose(compose, env_file(tmp_path, ""), "config", "--quiet")
    assert result.returncode != 0
    assert "set GRAFANA_ADMIN_PASSWORD in .env" in result.stdout + result.stderr


def test_the_password_comes_from_the_env_file(resolved: dict[str, Any]) -> None:
    grafana = resolved["services"]["grafana"]["environment"]
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret-from-env-file"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"


def test_the_real_env_file_is_git_ignored() -> None:
    result = subprocess.run(["git", "check-ignore", "--quiet", ".env"], cwd=ROOT, timeout=30)
    assert result.returncode == 0, ".env (the filled-in deploy/env.example) must be in .gitignore"


def test_every_service_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert set(services) == GPU_STACK | {"gateway-cpu", "otlp-receiver"}  # the last: the tracing profile's
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name


def test_torchserve_reserves_a_gpu_and_publishes_nothing(resolved: dict[str, Any]) -> None:
    torchserve = resolved["services"]["torchserve"]
    devices = torchserve["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "ports" not in torchserve
    assert {str(port) for port in torchserve["expose"]} == {"8080", "8081", "8082"}


def test_the_gateway_talks_to_torchserve_behind_the_load_balancer(resolved: dict[str, Any]) -> None:
    gateway = resolved["services"]["gateway"]
    assert "depends_on" not in gateway, "the gateway waits for TorchServe through /readyz, and reconnects by itself"
    assert gateway["environment"]["DIGITS_BACKEND"] == "torchserve"
    assert gateway["environment"]["DIGITS_TORCHSERVE_URL"] == "http://torchserve:8080"
    assert published_ports(gateway) == [], "replicas publish nothing, so that --scale works"
    assert {str(port) for port in gateway["expose"]} == {"8000", "8001"}, "HTTP and gRPC"
    loadbalancer = resolved["services"]["loadbalancer"]
    assert ("0.0.0.0", 8000, 8000) in published_ports(loadbalancer)
    assert ("0.0.0.0", 8001, 8001) in published_ports(loadbalancer), "gRPC"
    assert ("127.0.0.1", 8404, 8404) in published_ports(loadbalancer), "HAProxy's stats stay on loopback"
    grafana = resolved["services"]["grafana"]
    assert {k: v["condition"] for k, v in grafana["depends_on"].items()} == {"prometheus": "service_healthy"}


def test_the_drain_ends_before_compose_kills_a_gateway(resolved: dict[str, Any]) -> None:
    from service.core.settings import Settings

    drain = Settings().server.graceful_shutdown_seconds
    for name in ("gateway", "gateway-cpu"):
        grace = resolved["services"][name]["stop_grace_period"]
        assert grace.endswith("s") and float(grace.removesuffix("s")) > drain, name


def test_without_the_override_torchserve_wants_no_gpu_and_runs_cpu_torch(compose: list[str], tmp_path: Path) -> None:
    result = run_compose(
        compose, env_file(tmp_path, "pw"), "config", files=(ROOT / "docker-compose.yml", TORCHSERVE_ON_CPU)
    )
    assert result.returncode == 0, result.stderr
    torchserve = yaml.safe_load(result.stdout)["services"]["torchserve"]
    assert "deploy" not in torchserve
    assert torchserve["build"]["args"]["TORCH_VARIANT"] == "cpu" and torchserve["image"].endswith("-cpu")


def test_the_debian_prometheus_stand_in_changes_only_the_image(compose: list[str], tmp_path: Path) -> None:
    env = env_file(tmp_path, "pw")
    plain = yaml.safe_load(run_compose(compose, env, "config", files=(ROOT / "docker-compose.yml",)).stdout)
    result = run_compose(compose, env, "config", files=(ROOT / "docker-compose.yml", DEBIAN_PROMETHEUS))
    swapped = yaml.safe_load(result.stdout)
    before, after = plain["services"]["prometheus"], swapped["services"]["prometheus"]
    assert before["image"].startswith("prom/prometheus:") and after["image"].startswith("digits-prometheus-debian:")
    assert {k: v for k, v in after.items() if k not in ("image", "build")} == {
        k: v for k, v in before.items() if k != "image"
    }


def test_monitoring_is_on_loopback_and_keeps_its_data_in_named_volumes(resolved: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        service = resolved["services"][name]
        ((host, _, _),) = published_ports(service)
        assert host == "127.0.0.1", f"{name} is published beyond loopback"
        assert [source for source, _ in mounts(service) if source in resolved["volumes"]], f"{name}: no named volume"
    assert set(resolved["volumes"]) == {"prometheus-data", "grafana-data", "models", "serving-state"}


def started_by(command: str, services: dict[str, Any]) -> set[str]:
    """The services `up` starts, by Compose's rule: those without profiles and those with an enabled one, where a
    --profile on the command line replaces COMPOSE_PROFILES (set in .env, that is deploy/env.example)."""
    words = shlex.split(command)
    profiles = {word for before, word in itertools.pairwise(words) if before == "--profile"}
    if not profiles:
        settings = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line)
        profiles = set(settings.get("COMPOSE_PROFILES", "").split(",")) - {""}
    return {
        name for name, service in services.items() if not service.get("profiles") or profiles & set(service["profiles"])
    }


@pytest.mark.parametrize(("command", "stack"), [(CPU_COMMAND, CPU_STACK), (GPU_COMMAND, GPU_STACK)], ids=["cpu", "gpu"])
def test_each_readme_command_starts_exactly_its_stack(resolved: dict[str, Any], command: str, stack: set[str]) -> None:
    services = resolved["services"]
    started = started_by(readme_command(command), services)
    assert started == stack
    assert all(dependency in started for name in started for dependency in services[name].get("depends_on", {}))


def test_the_cpu_variant_needs_no_gpu(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert not any("deploy" in services[name] for name in CPU_STACK)
    cpu = services["gateway-cpu"]
    assert cpu["profiles"] == ["cpu"] and cpu["environment"]["DIGITS_BACKEND"] == "embedded"
    assert "gateway" in cpu["networks"]["default"]["aliases"], "Prometheus finds the gateway by that name"


def test_prometheus_finds_the_services_compose_defines(resolved: dict[str, Any]) -> None:
    jobs = {
        job["job_name"]: job["dns_sd_configs"][0] for job in load_config(DEFAULT_PROMETHEUS_CONFIG)["scrape_configs"]
    }
    gateway_port = resolved["services"]["gateway"]["expose"][0]  # HTTP; then gRPC
    assert jobs["gateway"]["names"] == ["gateway"] and str(jobs["gateway"]["port"]) == str(gateway_port)
    assert jobs["torchserve"]["names"] == ["torchserve"]
    assert str(jobs["torchserve"]["port"]) in {str(port) for port in resolved["services"]["torchserve"]["expose"]}
    assert (str(DEFAULT_PROMETHEUS_CONFIG.parent), "/etc/prometheus") in mounts(resolved["services"]["prometheus"])


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        repository, _, tag = service["image"].rpartition(":")
        assert repository and tag and tag != "latest" and any(c.isdigit() for c in tag), f"{name}: {service['image']}"


def test_the_cpu_replicas_share_the_repository_and_the_serving_state_in_named_volumes(resolved: dict[str, Any]) -> None:
    """Every gateway-cpu replica mounts the same two volumes (tests/deploy/test_replicas_rollout.py runs it)."""
    cpu = resolved["services"]["gateway-cpu"]
    environment, mounted = cpu["environment"], dict((target, source) for source, target in mounts(cpu))
    assert mounted[environment["DIGITS_MODEL_REPOSITORY"]] == "models"
    assert mounted[environment["DIGITS_STATE_DIR"]] == "serving-state"
    assert {"models", "serving-state"} <= set(resolved["volumes"]), "named volumes, not one directory per replica"
    # The image has both directories, owned by its user, so that a new volume starts as a writable copy of them.
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert all(path in dockerfile for path in (environment["DIGITS_MODEL_REPOSITORY"], environment["DIGITS_STATE_DIR"]))
    gpu = resolved["services"]["gateway"]
    assert "DIGITS_MODEL_REPOSITORY" not in gpu["environment"], "TorchServe serves one version"


def test_the_api_keys_file_reaches_both_gateways_as_a_secret(compose: list[str], tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_text("")
    env = env_file(tmp_path, "pw")
    env.write_text(env.read_text() + f"DIGITS_API_KEYS_HOST_FILE={keys}\n")
    plain = run_compose(compose, env, "--profile", "cpu", "--profile", "gpu", "config",
                        files=(ROOT / "docker-compose.yml",))  # fmt: skip
    result = run_compose(compose, env, "--profile", "cpu", "--profile", "gpu", "config",
                         files=(ROOT / "docker-compose.yml", API_KEYS))  # fmt: skip
    assert plain.returncode == 0 and result.returncode == 0, plain.stderr + result.stderr
    config = yaml.safe_load(result.stdout)
    assert config["secrets"]["digits-api-keys"]["file"] == str(keys)
    for name in ("gateway", "gateway-cpu"):
        service = config["services"][name]
        (secret,) = service["secrets"]
        source = secret if isinstance(secret, str) else secret["source"]
        target = "" if isinstance(secret, str) else secret.get("target", "")
        assert source == "digits-api-keys" and target in ("", "/run/secrets/digits-api-keys"), secret
        assert service["environment"]["DIGITS_API_KEYS_FILE"] == "/run/secrets/digits-api-keys", name
        # Without the file the stack runs with no keys (the admin endpoints refuse everyone).
        assert "DIGITS_API_KEYS_FILE" not in yaml.safe_load(plain.stdout)["services"][name]["environment"]
