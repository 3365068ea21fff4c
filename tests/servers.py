"""Real server processes for tests: the gateway and the benchmark's echo peer on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil

from ops.local_servers import ServerProcess, free_port

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def gateway_process(
    tmp_dir: Path, env: Mapping[str, str] | None = None, *, ready_timeout: float = 60, wait_ready: bool = True
) -> Iterator[ServerProcess]:
    """``digits serve`` as a real process on a free port (settings through DIGITS_* variables)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {"DIGITS_HOST": "127.0.0.1", "DIGITS_PORT": str(port), **(env or {})}
    command = [sys.executable, "-m", "digits_cli.main", "serve"]
    server = ServerProcess(f"gateway-{port}", command, full_env, tmp_dir, cwd=REPO, url=url)
    server.start(f"{url}/readyz" if wait_ready else None, ready_timeout)
    try:
        yield server
    finally:
        server.stop()


def uvicorn_workers(supervisor: int) -> set[int]:
    """The gateway's worker processes: the supervisor's children that run the app (not multiprocessing's helpers)."""
    found = set()
    for child in psutil.Process(supervisor).children():
        with contextlib.suppress(psutil.Error):
            if "resource_tracker" not in " ".join(child.cmdline()):
                found.add(child.pid)
    return found


@contextlib.contextmanager
def echo_peer(tmp_dir: Path) -> Iterator[str]:
    """The benchmark's bare FastAPI echo app on a free port: it answers 200 with the request itself."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bench.peers.echo_app:app", "--port", str(port),
               "--log-level", "warning"]  # fmt: skip
    server = ServerProcess(f"echo-{port}", command, os.environ, tmp_dir, cwd=REPO, url=f"http://127.0.0.1:{port}")
    server.start(f"{server.url}/readyz", 60)
    try:
        yield server.url
    finally:
        server.stop()
