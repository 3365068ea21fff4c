"""A docker-compose project of the repository's stack under test: started from the real compose files on
the real Docker engine, driven only through ports published on 127.0.0.1, always taken down.

The images come from ``make images`` (deploy/images/build.sh); nothing here builds them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops.local_servers import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
TORCHSERVE_ON_CPU = ROOT / "deploy" / "compose" / "torchserve-cpu.yml"
# prom/prometheus cannot be pulled here: Prometheus from Debian's package stands in (README "Deploy").
DEBIAN_PROMETHEUS = ROOT / "deploy" / "compose" / "debian-prometheus.yml"
# Nor can grafana/grafana, which is never run here: this file gives it a profile no command turns on.
NO_GRAFANA = ROOT / "deploy" / "compose" / "no-grafana.yml"
# The settings a user copies to .env; the tests read it in place of any .env in the checkout.
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
README = ROOT / "README.md"
ARTIFACTS = ROOT / "test-artifacts" / "deploy"


def require_docker() -> str:
    """The docker-compose command, when a Docker engine answers. CI must have one: there it fails, never skips."""
    compose = shutil.which("docker-compose")
    engine = compose is not None and subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode == 0
    if compose is None or not engine:
        message = "the deploy suite needs a Docker engine and docker-compose: run `make images` (it starts dockerd)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return compose


@dataclass
class ComposeStack:
    """One compose project: its files, profiles and the loopback ports it publishes."""

    name: str
    files: Sequence[Path]
    profiles: Sequence[str] = ()
    settings: dict[str, str] = field(default_factory=dict)  # compose variables, e.g. DIGITS_WORKERS
    port: int = field(default_factory=free_port)
    grpc_port: int = field(default_factory=free_port)
    stats_port: int = field(default_factory=free_port)
    prometheus_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        """The load balancer: the stack's one entrance."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_address(self) -> str:
        """The load balancer's gRPC port, as host:port."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.name,
            "DIGITS_PUBLISH_PORT": f"127.0.0.1:{self.port}",
            "DIGITS_GRPC_PUBLISH_PORT": f"127.0.0.1:{self.grpc_port}",
            "HAPROXY_STATS_PORT": str(self.stats_port),
            "PROMETHEUS_PORT": str(self.prometheus_port),
            "GRAFANA_ADMIN_PASSWORD": "not-started-in-tests",
            **self.settings,
        }

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [require_docker(), "--no-ansi", "--env-file", str(ENV_EXAMPLE)]
        for file in self.files:
            command += ["-f", str(file)]
        for profile in self.profiles:
            command += ["--profile", profile]
        result = subprocess.run(
            [*command, *args], cwd=ROOT, env=self.environment(), capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"docker-compose {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def up(self, *services: str, scale: dict[str, int] | None = None) -> None:
        """Start services without building (the images exist) and wait for nothing."""
        scale_args = [arg for service, count in (scale or {}).items() for arg in ("--scale", f"{service}={count}")]
        self.compose("up", "-d", "--no-build", *scale_args, *services)

    @contextlib.contextmanager
    def scaled(self, gateway: str, replicas: int) -> Iterator[ComposeStack]:
        """``replicas`` of ``gateway`` behind the load balancer, healthy and each taking traffic; the whole stack
        down at the end."""
        try:
            self.up(gateway, "loadbalancer", scale={gateway: replicas})
            self.wait_healthy(gateway, replicas)
            self.wait_balanced(replicas)
            yield self
        finally:
            self.down()

    def run_documented(self, line: str) -> None:
        """A `docker compose ...` line of the README, run as written on this stack's files and settings; the
        images exist, so nothing is built."""
        words = shlex.split(line)
        assert words[:2] == ["docker", "compose"] and "up" in words, line
        self.compose(*words[2:], "--no-build")

    def started_services(self) -> set[str]:
        """The services of this project that have a container."""
        result = subprocess.run(
            ["docker", "ps", "--all", "--filter", f"label=com.docker.compose.project={self.name}",
             "--format", '{{.Label "com.docker.compose.service"}}'],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return set(result.stdout.split())

    def down(self) -> None:
        """Keep every container's log as a test artifact, then remove containers, networks and volumes."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        logs = self.compose("logs", "--no-color", "--timestamps", check=False, timeout=120)
        (ARTIFACTS / f"{self.name}.log").write_text(logs.stdout + logs.stderr)
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "10", check=False, timeout=300)

    def containers(self, service: str) -> list[str]:
        return self.compose("ps", "-q", service).stdout.split()

    def wait_healthy(self, service: str, count: int = 1, timeout: float = 240) -> list[str]:
        """The service's containers once ``count`` of them report healthy through their own HEALTHCHECK."""
        deadline = time.monotonic() + timeout
        states: list[str] = []
        while time.monotonic() < deadline:
            ids = self.containers(service)
            states = [inspect(container)["State"].get("Health", {}).get("Status", "none") for container in ids]
            if states.count("healthy") >= count:
                return ids
            time.sleep(1)
        raise TimeoutError(f"{service}: {states} after {timeout} s, wanted {count} healthy\n{self.logs(service)}")

    def logs(self, service: str) -> str:
        return self.compose("logs", "--no-color", service, check=False).stdout

    def server_states(self, backend: str = "gateways") -> dict[str, str]:
        """HAProxy's view of the replicas in ``backend`` (``grpc-gateways``: gRPC's): server name -> UP, DOWN, ...
        (slots no replica resolves to left out)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5) as response:
            lines = response.read().decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == backend
            and row["svname"] not in ("FRONTEND", "BACKEND")
            and row["status"] != "MAINT (resolution)"
        }

    def wait_balanced(self, replicas: int, timeout: float = 120, backend: str = "gateways") -> None:
        """Wait until the load balancer sends traffic to exactly ``replicas`` replicas that are UP."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            states = self.server_states(backend)
            if list(states.values()).count("UP") == replicas:
                return
            time.sleep(0.5)
        raise TimeoutError(f"load balancer sees {states}, wanted {replicas} UP")


def inspect(container: str) -> dict[str, object]:
    result = subprocess.run(["docker", "inspect", container], capture_output=True, text=True, timeout=60, check=True)
    info: list[dict[str, object]] = json.loads(result.stdout)
    return info[0]


def readme_command(line: str) -> str:
    """``line``, which the README must show in a fenced bash block, as written there."""
    blocks = re.findall(r"^```bash\n(.*?)^```", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    lines = {entry.split("#")[0].strip() for block in blocks for entry in block.splitlines()}
    assert line in lines, f"README.md shows no `{line}` in a bash block"
    return line
