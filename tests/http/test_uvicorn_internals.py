"""Each uvicorn internal the gateway relies on (``service/uvicorn_internals.py``), tested on its own against a real
``digits serve``, so that a uvicorn release that breaks one fails the test named after it; and the start-up check
that refuses a release these tests did not run on."""

from __future__ import annotations

import ast
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil
import pytest

from ops.local_servers import ServerProcess, free_port
from service.uvicorn_internals import STARTUP_FAILURE, TESTED_UVICORN_RANGE, untested_uvicorn
from tests.servers import REPO, gateway_process, uvicorn_workers

# struct tcp_info (linux/tcp.h): the offset of tcpi_data_segs_in, the TCP segments with data a socket received
TCPI_DATA_SEGS_IN = 152
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def _connect(url: str, timeout: float = 10) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "", parts.port or 0), timeout=timeout)


def _data_segments_received(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    segments: int = struct.unpack_from("I", info, TCPI_DATA_SEGS_IN)[0]
    return segments


def _read_reply(sock: socket.socket) -> bytes:
    """One whole reply with a Content-Length body, however it arrives."""
    reply = b""
    while True:
        head, separator, body = reply.partition(b"\r\n\r\n")
        if separator:
            lengths = [
                line.split(b":")[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
            ]
            if len(body) >= int(lengths[0]):
                return reply
        data = sock.recv(65536)
        assert data, f"the connection closed within a reply: {reply!r}"
        reply += data


def _closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_head_and_body_leave_in_one_write(gateway: ServerProcess) -> None:
    """uvicorn writes a response's head and its body apart; the gateway's protocol sends them as one write, which
    loopback delivers as one TCP segment (two without the coalescing transport)."""
    replies = 20
    with _connect(gateway.url) as sock:
        before = _data_segments_received(sock)
        for _ in range(replies):  # one at a time: each reply is read whole before the next request
            sock.sendall(HEALTHZ)
            reply = _read_reply(sock)
            assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"}"), reply
        segments = _data_segments_received(sock) - before
    assert segments == replies, f"{segments} TCP segments for {replies} small replies"


def test_head_timeout_closes_a_slow_client(tmp_path: Path) -> None:
    """A head that has not arrived whole within the limit closes the connection: on a new connection, and on a
    kept-alive one after a response. uvicorn alone stops its keep-alive timer at the first byte and waits forever."""
    with gateway_process(tmp_path, {"DIGITS_HEADER_TIMEOUT_SECONDS": "1"}) as server:
        with _connect(server.url, timeout=15) as fresh, _connect(server.url, timeout=15) as kept_alive:
            fresh.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # begun, never finished
            kept_alive.sendall(HEALTHZ)
            assert _read_reply(kept_alive).startswith(b"HTTP/1.1 200")
            kept_alive.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next head: begun, never finished
            # 15 s of socket timeout: far past the 1 s limit, and past uvicorn's own 5 s keep-alive timeout
            assert _closed_by_server(fresh), "a new connection with half a head was left open"
            assert _closed_by_server(kept_alive), "a kept-alive connection with half a head was left open"
        with _connect(server.url) as sock:  # the server itself goes on
            sock.sendall(HEALTHZ)
            assert _read_reply(sock).startswith(b"HTTP/1.1 200")


def _listening_sockets(port: int) -> set[int]:
    """The inodes of the TCP sockets listening on ``port`` (any address)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    found.add(int(fields[9]))
    return found


def _sockets_held(pid: int, inodes: set[int]) -> set[int]:
    """Which of the socket ``inodes`` process ``pid`` holds a descriptor of."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:[") and int(target[8:-1]) in inodes:
            held.add(int(target[8:-1]))
    return held


def _worker_sockets(supervisor: int, port: int, count: int, gone: int | None = None) -> dict[int, set[int]]:
    """Each worker's listening sockets on ``port``, once ``count`` workers (none of them ``gone``) all listen."""
    deadline = time.monotonic() + 90  # a worker listens once its model is loaded
    while True:
        listening = _listening_sockets(port)
        held = {pid: _sockets_held(pid, listening) for pid in uvicorn_workers(supervisor)}
        if len(held) == count and gone not in held and all(held.values()):
            return held
        assert time.monotonic() < deadline, f"workers and their listening sockets on port {port}: {held}"
        time.sleep(0.2)


def test_each_worker_has_its_own_socket(tmp_path: Path) -> None:
    """Each worker listens on a socket of its own, which the supervisor does not hold; so connections opened at once
    land on every worker, however busy each one is at that moment.

    With one listening socket shared by the workers, whichever worker is awake accepts the whole burst, and its
    keep-alive connections stay with it. Here one worker is stopped (SIGSTOP) while 32 connections open, the extreme
    of "busy": with a socket each (SO_REUSEPORT) the kernel has already queued about half of them on its socket,
    and it serves them once it runs again.
    """
    connections = 32
    with gateway_process(tmp_path, {"DIGITS_WORKERS": "2"}, ready_timeout=120) as server:
        host, port = urlsplit(server.url).hostname or "", urlsplit(server.url).port or 0
        sockets = _worker_sockets(server.pid, port, count=2)
        assert [len(held) for held in sockets.values()] == [1, 1], sockets
        assert len(set.union(*sockets.values())) == 2, f"the workers share a socket: {sockets}"
        assert not _sockets_held(server.pid, _listening_sockets(port)), "the supervisor holds a worker's socket"
        workers = set(sockets)
        busy = psutil.Process(min(workers))
        clients = [socket.socket() for _ in range(connections)]
        try:
            busy.suspend()  # well within the supervisor's 5 s health check
            try:
                for client in clients:  # all connected before any is served, as wrk or a proxy's pool does
                    client.settimeout(10)
                    client.connect((host, port))
            finally:
                busy.resume()
            for _ in range(3):  # keep-alive: a few requests each, answered by the worker that accepted it
                for client in clients:
                    client.sendall(HEALTHZ)
                    assert _read_reply(client).startswith(b"HTTP/1.1 200")
            held = {pid: _connections_held(pid, port) for pid in workers}
        finally:
            for client in clients:
                client.close()
    print(f"\n{connections} connections opened at once, one worker stopped meanwhile; held per worker: {held}")
    assert sum(held.values()) == connections, held
    # Each connection is hashed to one of the two sockets: fewer than 4 of 32 on one is a 1-in-390,000 draw.
    assert min(held.values()) >= 4, f"connections per worker: {held}"


def _connections_held(pid: int, port: int) -> int:
    """Established TCP connections to ``port`` whose sockets process ``pid`` holds."""
    return sum(
        1
        for connection in psutil.Process(pid).connections(kind="tcp")
        if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port
    )


def test_a_dead_worker_is_restarted(tmp_path: Path) -> None:
    """A killed worker is replaced, and its replacement listens on a new socket of its own; the dead worker's
    socket leaves the port with it (nobody else holds it), so no new connection waits in its queue."""
    with gateway_process(tmp_path, {"DIGITS_WORKERS": "2"}, ready_timeout=120) as server:
        port = urlsplit(server.url).port or 0
        before = _worker_sockets(server.pid, port, count=2)
        victim = min(before)
        psutil.Process(victim).kill()
        after = _worker_sockets(server.pid, port, count=2, gone=victim)
        (survivor,) = set(before) - {victim}
        (replacement,) = set(after) - {survivor}
        assert after[survivor] == before[survivor]
        assert len(after[replacement]) == 1 and after[replacement] != before[victim], (before, after)
        assert _listening_sockets(port) == after[survivor] | after[replacement], "a socket nobody accepts from"
        assert not _sockets_held(server.pid, _listening_sockets(port)), "the supervisor holds a worker's socket"
        for _ in range(16):  # new connections, each hashed to one of the two sockets: all answered
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("version", ["0.55.0", "0.55.3", "0.55"])
def test_a_release_of_the_tested_minor_is_accepted(version: str) -> None:
    assert untested_uvicorn(version) is None


@pytest.mark.parametrize("version", ["0.54.0", "0.56.0", "1.55.0", "0.55.0rc1", "0.550.0", "unknown"])
def test_another_release_is_refused_in_one_line_naming_both(version: str) -> None:
    refusal = untested_uvicorn(version)
    assert refusal is not None
    assert f"uvicorn {version} is installed" in refusal
    assert TESTED_UVICORN_RANGE in refusal
    assert "\n" not in refusal


@pytest.mark.parametrize("workers", ["1", "2"])
def test_digits_serve_refuses_an_untested_uvicorn(tmp_path: Path, workers: str) -> None:
    """The real command, in an interpreter whose uvicorn reports another release (set before anything runs, by a
    sitecustomize module), exits at once with uvicorn's start-up failure status and one line."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import uvicorn\n\nuvicorn.__version__ = '0.99.0'\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
        "DIGITS_HOST": "127.0.0.1",
        "DIGITS_PORT": str(free_port()),
        "DIGITS_WORKERS": workers,
    }
    command = [sys.executable, "-m", "digits_cli.main", "serve"]
    # its own process group: were it to start serving instead, the workers go with it
    with subprocess.Popen(
        command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as serve:
        try:
            _, stderr = serve.communicate(timeout=60)
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGKILL)
    assert serve.returncode == STARTUP_FAILURE, stderr
    assert stderr.splitlines() == [untested_uvicorn("0.99.0")]


def test_only_one_module_imports_uvicorn_internals() -> None:
    """Beyond ``uvicorn`` itself (``uvicorn.run``, ``uvicorn.Config``), uvicorn is imported in one module only."""
    allowed = REPO / "service" / "uvicorn_internals.py"
    found = []
    for package in ("service", "ops", "loadtest", "digits_cli", "model"):
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                if path != allowed and any(name.startswith("uvicorn.") for name in names):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert found == []
