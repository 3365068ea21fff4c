"""The processes of ``digits monitor``: a gateway and a Prometheus, started, watched and stopped together."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ops.local_servers import LOOPBACK, ServerProcess
from ops.monitoring.config import DEFAULT_PROMETHEUS_CONFIG, load_config, with_targets, write_config

log = logging.getLogger(__name__)

GATEWAY_JOB = "gateway"
TORCHSERVE_JOB = "torchserve"


class MonitorError(RuntimeError):
    pass


@dataclass(frozen=True)
class MonitorOptions:
    gateway_port: int = 8000
    prometheus_port: int = 9090
    start_gateway: bool = True
    # Passed to `digits serve --backend`: "torchserve" starts a local TorchServe too; None keeps DIGITS_BACKEND.
    backend: Literal["embedded", "torchserve"] | None = None
    torchserve_metrics: str | None = None
    scrape_interval: str | None = None
    config: Path = DEFAULT_PROMETHEUS_CONFIG
    prometheus_binary: str = "prometheus"
    ready_timeout_seconds: float = 300.0

    def __post_init__(self) -> None:
        for name in ("gateway_port", "prometheus_port"):
            port = getattr(self, name)
            if not 1 <= port <= 65535:
                raise MonitorError(f"{name.replace('_', ' ')} {port} is not a TCP port (1-65535)")
        if self.gateway_port == self.prometheus_port:
            raise MonitorError(f"the gateway and Prometheus cannot both listen on port {self.gateway_port}")
        if self.ready_timeout_seconds <= 0:
            raise MonitorError("the ready timeout must be positive")

    @property
    def gateway_url(self) -> str:
        return f"http://{LOOPBACK}:{self.gateway_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{LOOPBACK}:{self.prometheus_port}"

    def targets(self) -> dict[str, list[str]]:
        return {
            GATEWAY_JOB: [f"{LOOPBACK}:{self.gateway_port}"],
            TORCHSERVE_JOB: [self.torchserve_metrics] if self.torchserve_metrics else [],
        }


@dataclass
class MonitoringStack:
    """``start()`` brings up the gateway (unless told not to) and then Prometheus; ``stop()`` ends both.

    Their output goes to ``gateway.log`` and ``prometheus.log`` in ``workdir``."""

    options: MonitorOptions
    workdir: Path
    processes: dict[str, ServerProcess] = field(default_factory=dict)

    def start(self) -> None:
        binary = shutil.which(self.options.prometheus_binary)
        if binary is None:
            raise MonitorError(
                f"{self.options.prometheus_binary!r} is not on PATH: install Prometheus (Debian: apt-get install "
                "prometheus) or pass --prometheus-binary"
            )
        config = with_targets(load_config(self.options.config), self.options.targets(), self.options.scrape_interval)
        config_file = write_config(config, self.options.config, self.workdir)
        if self.options.start_gateway:
            self._start_gateway()
        self._start_prometheus(binary, config_file)

    def _start_gateway(self) -> None:
        command = [sys.executable, "-m", "digits_cli.main", "serve", "--host", LOOPBACK]
        command += ["--port", str(self.options.gateway_port)]
        if self.options.backend is not None:
            command += ["--backend", self.options.backend]
        self._start(GATEWAY_JOB, command, f"{self.options.gateway_url}/readyz")

    def _start_prometheus(self, binary: str, config_file: Path) -> None:
        command = [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.options.prometheus_port}",
            "--enable-feature=exemplar-storage",  # the stage histograms' trace ids
        ]
        self._start("prometheus", command, f"{self.options.prometheus_url}/-/ready")
        log.info("Prometheus config: %s", config_file)

    def _start(self, name: str, command: list[str], ready_url: str) -> None:
        server = self.processes[name] = ServerProcess(name, command, {}, self.workdir)
        try:
            server.start(ready_url, self.options.ready_timeout_seconds)
        except RuntimeError as exc:
            raise MonitorError(str(exc)) from exc
        log.info("%s ready at %s (log %s)", name, ready_url.rsplit("/", 1)[0], server.log_path)

    def wait(self, poll_seconds: float = 0.5) -> str:
        """Blocks until one of the processes exits; returns its name."""
        while True:
            for name, server in self.processes.items():
                if server.process.poll() is not None:
                    return name
            time.sleep(poll_seconds)

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM to Prometheus first (it scrapes the gateway), then the gateway; SIGKILL after ``timeout``."""
        for server in reversed(self.processes.values()):
            server.stop(timeout_s=timeout)
        self.processes.clear()
