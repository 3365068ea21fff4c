"""A real TorchServe process serving our archive with deploy/torchserve/config.properties.

Used by ``digits serve --backend torchserve``, ``digits torchserve``, the tests and the benchmark::

    from ops.torchserve.archive import build_archive
    from ops.torchserve.launcher import TorchServe, TorchServeConfig

    mar = build_archive(artifact, tmp / "model-store")              # digits.mar
    config = TorchServeConfig(mar_path=mar, log_dir=tmp / "logs",
                              inference_port=8080, management_port=8081, metrics_port=8082)
    # or TorchServeConfig.on_free_ports(mar, tmp / "logs", workers=2): three free loopback ports
    with TorchServe(config) as torchserve:                          # start() + wait_ready()
        torchserve.predict_url     # http://127.0.0.1:8080/predictions/digits
        torchserve.inference_url   # http://127.0.0.1:8080      (POST /predictions/digits, GET /ping)
        torchserve.management_url  # http://127.0.0.1:8081      (GET /models/digits)
        torchserve.metrics_url     # http://127.0.0.1:8082      (GET /metrics, Prometheus text)
    # leaving the block: stop()

Stable names: :class:`TorchServeConfig` (fields below, and ``on_free_ports``), :class:`TorchServe` with ``start()``,
``wait_ready(timeout)``, ``stop()``, ``wait()``, ``running``, ``pid``, ``inference_url``, ``management_url``,
``metrics_url``, ``predict_url``, ``output_log`` and ``config``. A stopped instance can be started again on the
same ports.

TorchServe runs in its own session (process group), so a terminal's Ctrl-C reaches only our process,
which then stops the gateway first and TorchServe second. Its addresses, worker count and thread
settings are passed as ``TS_*`` environment variables (``enable_envvars_config=true`` in the config file).
Everything it writes goes to ``log_dir`` (logs, metrics logs, ``torchserve.out``) or to a private
temporary directory (its working directory, the unpacked archive, its pid file) removed on ``stop()``:
nothing lands in the current directory, and several instances can run side by side.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psutil
from ts.model_server import load_properties

from ops.local_servers import free_ports

log = logging.getLogger(__name__)

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "torchserve" / "config.properties"
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


@dataclass(frozen=True)
class TorchServeConfig:
    mar_path: Path  # the archive (digits export-mar); its directory is the model store
    log_dir: Path  # TorchServe's logs and metrics logs, and torchserve.out (its stdout and stderr)
    host: str = "127.0.0.1"  # where all three APIs listen; 0.0.0.0 in containers
    inference_port: int = 8080
    management_port: int = 8081
    metrics_port: int = 8082
    # TorchServe 0.12 always opens its gRPC APIs (unused here) on loopback; None picks free ports at start.
    grpc_inference_port: int | None = None
    grpc_management_port: int | None = None
    model_name: str = "digits"
    workers: int | None = None  # None: one per CPU core (per GPU on GPU machines)
    torch_threads: int = 1  # OMP_NUM_THREADS of each worker
    config_file: Path = DEFAULT_CONFIG
    start_timeout_seconds: float = 120.0
    stop_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        http = (self.inference_port, self.management_port, self.metrics_port)
        ports = [*http, *(p for p in (self.grpc_inference_port, self.grpc_management_port) if p is not None)]
        if any(not 0 < port < 65536 for port in ports) or len(set(ports)) != len(ports):
            raise ValueError(f"TorchServe needs different ports in 1-65535, got {ports}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1 (or None for one per core), got {self.workers}")
        if self.torch_threads < 1:
            raise ValueError(f"torch_threads must be at least 1, got {self.torch_threads}")
        if self.mar_path.suffix != ".mar" or not self.mar_path.is_file():
            raise FileNotFoundError(f"no model archive at {self.mar_path}; build one with digits export-mar")
        if not self.config_file.is_file():
            raise FileNotFoundError(f"TorchServe config {self.config_file} does not exist")
        if load_properties(str(self.config_file)).get("enable_envvars_config") != "true":
            raise ValueError(
                f"{self.config_file} must set enable_envvars_config=true (the launcher uses TS_* variables)"
            )

    @classmethod
    def on_free_ports(cls, mar_path: Path, log_dir: Path, **fields: Any) -> Self:
        """A loopback config on three ports that are free right now (tests, benchmarks)."""
        inference, management, metrics = free_ports(3)
        return cls(
            mar_path=mar_path,
            log_dir=log_dir,
            host="127.0.0.1",
            inference_port=inference,
            management_port=management,
            metrics_port=metrics,
            **fields,
        )


class TorchServe:
    def __init__(self, config: TorchServeConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._work_dir: Path | None = None

    # Addresses.
    def _url(self, port: int) -> str:
        host = ANY_ADDRESS.get(self.config.host, self.config.host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def inference_url(self) -> str:
        return self._url(self.config.inference_port)

    @property
    def management_url(self) -> str:
        return self._url(self.config.management_port)

    @property
    def metrics_url(self) -> str:
        return self._url(self.config.metrics_port)

    @property
    def predict_url(self) -> str:
        return f"{self.inference_url}/predictions/{self.config.model_name}"

    @property
    def output_log(self) -> Path:
        return self.config.log_dir / "torchserve.out"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    # Lifetime.
    def start(self) -> None:
        """Launch TorchServe and return at once; :meth:`wait_ready` waits for the workers."""
        if self.running:
            raise RuntimeError(f"TorchServe is already running (pid {self.pid})")
        if not _java_available():
            raise RuntimeError("TorchServe needs Java 17 (apt-get install openjdk-17-jre-headless) or JAVA_HOME")
        self.config.log_dir.mkdir(parents=True, exist_ok=True)
        self._work_dir = Path(tempfile.mkdtemp(prefix="torchserve-"))
        with self.output_log.open("ab") as output:
            self._process = subprocess.Popen(
                self._command(),
                cwd=self._work_dir,
                env=self._environment(self._work_dir),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.info(
            "started TorchServe (pid %d) with %s at %s",
            self._process.pid,
            self.config.mar_path.name,
            self.inference_url,
        )

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until every worker of the model is READY; fail early if TorchServe exits."""
        limit = self.config.start_timeout_seconds if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self._workers_ready():
            if self._process is None or self._process.poll() is not None:
                code = None if self._process is None else self._process.returncode
                raise RuntimeError(f"TorchServe exited ({code}) before it was ready:\n{self._output_tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"TorchServe not ready after {limit:.0f} s; see {self.config.log_dir}")
            time.sleep(0.25)

    def wait(self) -> int:
        """Block until TorchServe exits by itself; returns its exit code."""
        if self._process is None:
            raise RuntimeError("TorchServe was not started")
        return self._process.wait()

    def stop(self) -> int | None:
        """SIGTERM to TorchServe's frontend, SIGKILL to its whole group after ``stop_timeout_seconds``.

        Only the Java frontend is signalled at first: it stops its workers itself, whereas workers that
        die first are restarted by it. Returns the exit code of the ``torchserve`` script.
        """
        process, self._process = self._process, None
        if process is None:
            return None
        group = process.pid  # start_new_session made the torchserve script the group leader
        if process.poll() is None:
            for member in _frontend_or_script(process.pid):
                member.terminate()
            try:
                process.wait(self.config.stop_timeout_seconds)
            except subprocess.TimeoutExpired:
                _signal_group(group, signal.SIGKILL)
                process.wait()
        _end_group(group, grace_seconds=5.0)
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
        log.info("stopped TorchServe (pid %d, exit %s)", process.pid, process.returncode)
        return process.returncode

    def __enter__(self) -> Self:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # Internals.
    def _command(self) -> list[str]:
        c = self.config
        return [
            sys.executable, "-m", "ts.model_server", "--start", "--foreground",
            "--ncs", "--disable-token-auth",
            "--ts-config", str(c.config_file.resolve()),
            "--model-store", str(c.mar_path.resolve().parent),
            "--models", f"{c.model_name}={c.mar_path.name}",
        ]  # fmt: skip

    def _environment(self, work_dir: Path) -> dict[str, str]:
        c = self.config
        logs = str(c.log_dir.resolve())
        env = {
            **os.environ,
            "TS_INFERENCE_ADDRESS": f"http://{c.host}:{c.inference_port}",
            "TS_MANAGEMENT_ADDRESS": f"http://{c.host}:{c.management_port}",
            "TS_METRICS_ADDRESS": f"http://{c.host}:{c.metrics_port}",
            "LOG_LOCATION": logs,
            "METRICS_LOCATION": logs,
            # The pid file of the torchserve script lives in $TMPDIR, the unpacked archives in $TEMP.
            "TMPDIR": str(work_dir),
            "TEMP": str(work_dir),
            "OMP_NUM_THREADS": str(c.torch_threads),
            "MKL_NUM_THREADS": str(c.torch_threads),
        }
        if c.workers is not None:
            env["TS_DEFAULT_WORKERS_PER_MODEL"] = str(c.workers)
        free = iter(free_ports(2))
        env["TS_GRPC_INFERENCE_PORT"] = str(c.grpc_inference_port or next(free))
        env["TS_GRPC_MANAGEMENT_PORT"] = str(c.grpc_management_port or next(free))
        return env

    def _workers_ready(self) -> bool:
        url = f"{self.management_url}/models/{self.config.model_name}"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                description = json.loads(response.read())
        except (OSError, ValueError, urllib.error.HTTPError):
            return False
        workers = description[0].get("workers", []) if description else []
        return bool(workers) and all(worker.get("status") == "READY" for worker in workers)

    def _output_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.output_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no output)"


def _java_available() -> bool:
    java_home = os.environ.get("JAVA_HOME")
    return Path(java_home, "bin", "java").is_file() if java_home else shutil.which("java") is not None


def _frontend_or_script(pid: int) -> list[psutil.Process]:
    """The Java frontend the torchserve script started, or the script itself while it has none."""
    try:
        script = psutil.Process(pid)
        return script.children() or [script]
    except psutil.NoSuchProcess:
        return []


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _end_group(group: int, grace_seconds: float) -> None:
    """Wait until no process of the group is left (workers exit once the frontend is gone); SIGKILL stragglers."""
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    _signal_group(group, signal.SIGKILL)
