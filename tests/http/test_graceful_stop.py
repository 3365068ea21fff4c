"""A stopping gateway (SIGTERM) keeps its kept-alive connections until they are between a response and the
client: a request the client sends on one right after the stop began is answered, with "Connection: close",
where uvicorn alone closes the idle connection and the request gets no answer (a failed request behind a
Kubernetes Service in a rolling update; tests/kubernetes measures that)."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.servers import gateway_process

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"


def read_response(connection: socket.socket) -> bytes:
    """One whole response to GET /healthz (small: its head and body arrive together), or b"" when closed."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = connection.recv(65536)
        if not chunk:
            return received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return received


def test_a_request_on_a_kept_alive_connection_after_sigterm_is_answered_then_the_connection_closes(
    tmp_path: Path,
) -> None:
    with gateway_process(tmp_path, {"DIGITS_WORKERS": "1", "DIGITS_GRACEFUL_SHUTDOWN_SECONDS": "10"}) as server:
        assert server.url is not None
        address = urlsplit(server.url)
        with socket.create_connection((address.hostname or "", address.port or 0), timeout=10) as connection:
            connection.sendall(REQUEST)
            first = read_response(connection)
            assert first.startswith(b"HTTP/1.1 200"), first
            assert b"connection: close" not in first.lower()
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # the stop has begun: the listening socket is closed
            connection.sendall(REQUEST)
            second = read_response(connection)
            assert second.startswith(b"HTTP/1.1 200"), second
            assert b"connection: close" in second.lower()
            assert connection.recv(65536) == b""  # then the gateway closes it
