"""Real server processes for tests: free loopback ports, start, wait until ready, stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from service.local_servers import free_port, wait_until_ready

REPO = Path(__file__).resolve().parent.parent


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextlib.contextmanager
def gateway_process(
    tmp_dir: Path, env: Mapping[str, str] | None = None, *, ready_timeout: float = 60, wait_ready: bool = True
) -> Iterator[ServerProcess]:
    """``digits serve`` as a real process on a free port (settings through DIGITS_* variables)."""
    port = free_port()
    log_path = tmp_dir / f"gateway-{port}.log"
    full_env = {**os.environ, "DIGITS_HOST": "127.0.0.1", "DIGITS_PORT": str(port), **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve"], cwd=REPO, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        if wait_ready:
            wait_until_ready(f"{server.url}/readyz", ready_timeout, process)
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def echo_peer() -> Iterator[str]:
    """The benchmark's bare FastAPI echo app on a free port: it answers 200 with the request itself."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "loadtest.peers.echo_app:app", "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env=os.environ.copy())
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{url}/readyz", 60, process)
        yield url
    finally:
        process.terminate()
        process.wait(10)
