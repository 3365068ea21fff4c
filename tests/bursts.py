"""A burst of requests from another process, so that they reach the server together whatever the test's own
thread and event loop do: every connection opened first, then every request written back to back, then every
answer read. Each request is written but for its last byte, and the last bytes follow together once the server
has had time to read the rest: so every request is in flight (being read) before any is complete. Sent whole,
one after another, a fast server answers each before the next arrives often enough to make a test that needs
a batch flaky."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence

_CLIENT = """
import json, socket, sys, time
port, requests = int(sys.argv[1]), [bytes.fromhex(r) for r in json.loads(sys.stdin.read())]
sockets = [socket.create_connection(("127.0.0.1", port)) for _ in requests]
for s, request in zip(sockets, requests):
    s.sendall(request[:-1])
time.sleep(0.2)
for s, request in zip(sockets, requests):
    s.send(request[-1:])
statuses = []
for s in sockets:
    head = b""
    while b"\\r\\n" not in head:
        head += s.recv(4096)
    statuses.append(int(head.split()[1]))
print(json.dumps(statuses))
"""


def post_request(path: str, body: bytes, headers: Mapping[str, str] | None = None) -> bytes:
    """One HTTP/1.1 POST of a JSON ``body``, as the bytes on the wire."""
    lines = [f"POST {path} HTTP/1.1", "Host: burst", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def burst(port: int, requests: Sequence[bytes], timeout: float = 60) -> list[int]:
    """Send ``requests`` on as many connections at once; the answers' status codes, in order."""
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, str(port), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(client.communicate(json.dumps([r.hex() for r in requests]).encode()), timeout)
    statuses: list[int] = json.loads(out)
    return statuses
