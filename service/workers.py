"""Several gateway workers on one port, each accepting from a listening socket of its own (``SO_REUSEPORT``).

With one listening socket shared by all workers (what ``uvicorn.run(..., workers=N)`` binds), every worker waits on
the same accept queue and whichever wakes first takes a whole burst of new connections; keep-alive clients (wrk, a
proxy's connection pool) then stay on that one worker while the others idle. With a socket each, bound to the same
address with ``SO_REUSEPORT``, the kernel picks a socket for every new connection by a hash of its addresses, so
connections spread evenly over the workers whatever each one is doing at the time (nginx's ``reuse_port``).

The sockets are bound here; uvicorn's supervisor, overridden in ``service.uvicorn_internals``, hands them out.
"""

from __future__ import annotations

import logging
import socket

log = logging.getLogger("uvicorn.error")


def bind_worker_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """``count`` sockets bound to ``host``:``port`` with ``SO_REUSEPORT``, not listening yet.

    A socket that is bound but not listening gets no connections: each worker's socket joins the kernel's group for
    the port only when that worker starts serving. Raises ``OSError`` when the port is taken, including by another
    server that listens on it with ``SO_REUSEPORT`` (which the kernel would otherwise let these sockets join).
    ``port`` 0 binds them all to one free port.
    """
    # First a socket as uvicorn binds one (SO_REUSEADDR only): it cannot share the port with any listening socket.
    # It stays bound, and listens never, while the workers' sockets take the same port (the kernel allows sockets
    # that all set SO_REUSEADDR to share a port as long as none of them listens): nothing can take the port between.
    with _bind(host, port, reuse_port=False) as probe:
        port = probe.getsockname()[1]
        sockets: list[socket.socket] = []
        try:
            for _ in range(count):
                sockets.append(_bind(host, port, reuse_port=True))
        except OSError:
            for sock in sockets:
                sock.close()
            raise
    address = f"[{host}]" if ":" in host else host
    log.info("Uvicorn running on http://%s:%d, a socket for each worker (Press CTRL+C to quit)", address, port)
    return sockets


def bind_worker_socket(host: str, port: int) -> socket.socket:
    """One more socket for the port's group, bound like the others, for a worker that replaces one."""
    return _bind(host, port, reuse_port=True)


def _bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)  # as uvicorn's Config.bind_socket
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
