"""The one way this project runs a server command: start, wait until ready, report a failed start, stop."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from ops.local_servers import ServerProcess, free_port, free_ports


def test_a_server_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('bad configuration'); sys.exit(3)"]
    server = ServerProcess("broken", command, {}, tmp_path)
    with pytest.raises(RuntimeError, match="exited with 3") as error:
        server.start(f"http://127.0.0.1:{free_port()}/readyz", timeout_s=30)
    assert "bad configuration" in str(error.value)
    server.stop()


def test_a_ready_server_is_stopped_with_the_signal_asked_for(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    server = ServerProcess("http", command, {}, tmp_path, url=f"http://127.0.0.1:{port}")
    server.start(f"{server.url}/", timeout_s=30)
    assert server.process.poll() is None
    assert server.stop(signal.SIGINT) is not None and server.process.poll() is not None


def test_free_ports_are_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
