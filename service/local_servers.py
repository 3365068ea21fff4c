"""Servers this project starts on this machine (monitor, TorchServe, benchmark, tests): free ports, readiness."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request

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
    url: str, timeout: float, process: subprocess.Popen[bytes] | None = None, poll_seconds: float = 0.2
) -> None:
    """Poll ``url`` until it answers 200; fail at once when ``process`` has exited."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise NotReadyError(f"{process.args!r} exited with {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(poll_seconds)
    raise NotReadyError(f"{url} was not ready after {timeout:.0f} s ({last})")
