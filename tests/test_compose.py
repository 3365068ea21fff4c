"""docker-compose.yml: valid for a real Compose implementation, and the stack the README promises.

The validator is `docker compose` (the v2 plugin) when the docker CLI has it, else Debian's
`docker-compose` (1.29, which checks the file against its bundled compose-spec JSON schema and resolves
interpolation, merges and profiles). Neither needs a Docker engine for `config`.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.monitoring.config import DEFAULT_PROMETHEUS_CONFIG, load_config

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
GPU_STACK = {"gateway", "torchserve", "prometheus", "grafana"}
CPU_COMMAND_SERVICES = ["gateway-cpu", "prometheus", "grafana"]  # README: docker compose --profile cpu up ...


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


def run_compose(compose: list[str], env: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [*compose, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml")]
    return subprocess.run(
        [*command, "--env-file", str(env), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


@pytest.fixture(scope="module")
def resolved(compose: list[str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The file as Compose resolves it, with the cpu profile on so that every service is listed."""
    env = env_file(tmp_path_factory.mktemp("compose"), "s3cret-from-env-file")
    result = run_compose(compose, env, "--profile", "cpu", "config")
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
    assert set(services) == GPU_STACK | {"gateway-cpu"}
    for name, service in services.items():
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD" and len(test) > 1, name


def test_torchserve_reserves_a_gpu_and_publishes_nothing(resolved: dict[str, Any]) -> None:
    torchserve = resolved["services"]["torchserve"]
    devices = torchserve["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "ports" not in torchserve
    assert {str(port) for port in torchserve["expose"]} == {"8080", "8081", "8082"}


def test_the_gateway_talks_to_torchserve_once_it_is_healthy(resolved: dict[str, Any]) -> None:
    gateway = resolved["services"]["gateway"]
    assert {k: v["condition"] for k, v in gateway["depends_on"].items()} == {"torchserve": "service_healthy"}
    assert gateway["environment"]["DIGITS_BACKEND"] == "torchserve"
    assert gateway["environment"]["DIGITS_TORCHSERVE_URL"] == "http://torchserve:8080"
    assert published_ports(gateway) == [("0.0.0.0", 8000, 8000)]
    grafana = resolved["services"]["grafana"]
    assert {k: v["condition"] for k, v in grafana["depends_on"].items()} == {"prometheus": "service_healthy"}


def test_monitoring_is_on_loopback_and_keeps_its_data_in_named_volumes(resolved: dict[str, Any]) -> None:
    for name in ("prometheus", "grafana"):
        service = resolved["services"][name]
        ((host, _, _),) = published_ports(service)
        assert host == "127.0.0.1", f"{name} is published beyond loopback"
        assert [source for source, _ in mounts(service) if source in resolved["volumes"]], f"{name}: no named volume"
    assert set(resolved["volumes"]) == {"prometheus-data", "grafana-data"}


def test_the_cpu_variant_needs_no_gpu(resolved: dict[str, Any]) -> None:
    """The documented no-GPU command starts gateway-cpu, Prometheus and Grafana, and nothing that wants a GPU."""
    services = resolved["services"]
    started, todo = set(), list(CPU_COMMAND_SERVICES)
    while todo:
        name = todo.pop()
        if name not in started:
            started.add(name)
            todo.extend(services[name].get("depends_on", {}))
    assert started == set(CPU_COMMAND_SERVICES)
    assert not any("deploy" in services[name] for name in started)
    cpu = services["gateway-cpu"]
    assert cpu["profiles"] == ["cpu"] and cpu["environment"]["DIGITS_BACKEND"] == "embedded"
    assert "gateway" in cpu["networks"]["default"]["aliases"], "Prometheus finds the gateway by that name"
    assert not any("profiles" in services[name] for name in GPU_STACK), "plain `docker compose up` is the GPU stack"


def test_prometheus_finds_the_services_compose_defines(resolved: dict[str, Any]) -> None:
    jobs = {
        job["job_name"]: job["dns_sd_configs"][0] for job in load_config(DEFAULT_PROMETHEUS_CONFIG)["scrape_configs"]
    }
    ((_, _, gateway_port),) = published_ports(resolved["services"]["gateway"])
    assert jobs["gateway"]["names"] == ["gateway"] and jobs["gateway"]["port"] == gateway_port
    assert jobs["torchserve"]["names"] == ["torchserve"]
    assert str(jobs["torchserve"]["port"]) in {str(port) for port in resolved["services"]["torchserve"]["expose"]}
    assert (str(DEFAULT_PROMETHEUS_CONFIG.parent), "/etc/prometheus") in mounts(resolved["services"]["prometheus"])


def test_images_are_pinned(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        repository, _, tag = service["image"].rpartition(":")
        assert repository and tag and tag != "latest" and any(c.isdigit() for c in tag), f"{name}: {service['image']}"
