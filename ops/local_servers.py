"""Servers this project starts on this machine (monitor, TorchServe, benchmark, tests): free ports, readiness,
and the one class that runs a server command as a child process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (held together, so never the same twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port() -> int:
    return free_ports(1)[0]


class NotReadyError(RuntimeError):
    """A server did not answer 200 in time, or its process exited first."""


def wait_until_ready(
    url: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    poll_seconds: float = 0.2,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Poll ``url`` (with ``headers``) until it answers 200; fail at once when ``process`` has exited."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotReadyError(f"{process.args!r} exited with {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=dict(headers or {})), timeout=2
            ) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(poll_seconds)
    raise NotReadyError(f"{url} was not ready after {timeout:.0f} s ({last})")


class ServerProcess:
    """One server command as a child process, its output in ``<log_dir>/<name>.log``; ready when a URL answers 200."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        log_dir: Path,
        *,
        cwd: Path | None = None,
        url: str = "",
    ) -> None:
        self.name = name
        self.url = url  # where it listens, when the caller chose that
        self._command = list(command)
        self._env = {**os.environ, **env}
        self._cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._process

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def start(self, ready_url: str | None, timeout_s: float = 120.0) -> None:
        """Start the command; with ``ready_url``, return once it answers 200 (or stop it and raise)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self._command, cwd=self._cwd, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        if ready_url is None:
            return
        try:
            wait_until_ready(ready_url, timeout_s, self._process)
        except BaseException as exc:
            self.stop()
            raise RuntimeError(
                f"{self.name} did not start ({exc}); {self.log_path} ends with:\n{self.log()[-1500:]}"
            ) from exc

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int | None:
        """Send ``sig``, wait ``timeout_s``, then kill; returns the exit code (None when never started)."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode
