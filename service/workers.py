"""Several gateway workers on one port, each accepting from a listening socket of its own (``SO_REUSEPORT``).

With one listening socket shared by all workers (what ``uvicorn.run(..., workers=N)`` binds), every worker waits on
the same accept queue and whichever wakes first takes a whole burst of new connections; keep-alive clients (wrk, a
proxy's connection pool) then stay on that one worker while the others idle. With a socket each, bound to the same
address with ``SO_REUSEPORT``, the kernel picks a socket for every new connection by a hash of its addresses, so
connections spread evenly over the workers whatever each one is doing at the time (nginx's ``reuse_port``).
"""

from __future__ import annotations

import logging
import socket

from uvicorn.config import Config
from uvicorn.supervisors.multiprocess import Multiprocess

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


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's supervisor (signals, health checks, dead workers replaced, SIGHUP's rolling restart), except that
    every worker it starts gets a socket of its own instead of all of them sharing one.

    uvicorn 0.54 starts each worker as ``Process(self.config, self.sockets)`` followed at once by ``start()``: at
    start-up, for a dead worker, for each worker on SIGHUP and on SIGTTIN. So here ``sockets`` is a property that
    hands out one socket at each read: the ones bound before start-up first, then a new one per replacement.

    Once a worker has started (``start()`` passes the socket to the new process), this process closes its own copy,
    so that the worker holds the socket's only descriptor and it closes with the worker: a worker that dies, or stops
    on SIGTERM or SIGHUP, leaves the port's group at once and new connections go to the others, rather than waiting
    in the accept queue of a socket nobody accepts from. (Connections already in that queue, not yet accepted, are
    reset then, unless the sysctl ``net.ipv4.tcp_migrate_req`` has the kernel move them to another worker's socket.)
    """

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        """``sockets``: from :func:`bind_worker_sockets`, one for each of the first ``config.workers`` workers."""
        self._port: int = sockets[0].getsockname()[1]  # the one actually bound when config.port is 0
        self._unused: list[socket.socket] = []  # bound before start-up, for the first workers
        self._handed_out: list[socket.socket] = []  # given to workers; this process's copies, to be closed
        super().__init__(config, sockets)  # which sets self.sockets = sockets

    @property
    def sockets(self) -> list[socket.socket]:
        sock = self._unused.pop(0) if self._unused else _bind(self.config.host, self._port, reuse_port=True)
        self._handed_out.append(sock)
        return [sock]

    @sockets.setter
    def sockets(self, sockets: list[socket.socket]) -> None:
        self._unused = list(sockets)

    # The three places where Multiprocess.run starts workers; each of them started every worker it created.
    def init_processes(self) -> None:
        super().init_processes()
        self._close_handed_out()

    def keep_subprocess_alive(self) -> None:
        super().keep_subprocess_alive()
        self._close_handed_out()

    def handle_signals(self) -> None:
        super().handle_signals()
        self._close_handed_out()

    def _close_handed_out(self) -> None:
        while self._handed_out:
            self._handed_out.pop().close()
