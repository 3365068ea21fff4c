"""Every place the gateway overrides uvicorn's internals, and the uvicorn version they were tested with.

uvicorn documents ``uvicorn.run`` and ``uvicorn.Config``; its protocol classes and its supervisor are internals that
a release may change without notice. The gateway subclasses both (``GatewayProtocol``, ``ReusePortMultiprocess``),
so a release outside ``TESTED_UVICORN_RANGE`` is refused at start-up (:func:`require_tested_uvicorn`), and each
behaviour relied on here has a test of its own in ``tests/http/test_uvicorn_internals.py``. Why each override
exists and what it gained: ``docs/architecture.md``, "Where the code reaches into dependencies".
No other module imports from ``uvicorn`` beyond ``uvicorn.run`` and ``uvicorn.Config``.
"""

from __future__ import annotations

import asyncio
import re
import socket
import sys
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess

from service.http.coalescing_transport import CoalescingTransport
from service.workers import bind_worker_socket

__all__ = [
    "STARTUP_FAILURE",
    "TESTED_UVICORN_RANGE",
    "GatewayProtocol",
    "ReusePortMultiprocess",
    "require_tested_uvicorn",
    "untested_uvicorn",
]

TESTED_UVICORN_MINOR = (0, 55)
TESTED_UVICORN_RANGE = ">={0}.{1},<{0}.{2}".format(*TESTED_UVICORN_MINOR, TESTED_UVICORN_MINOR[1] + 1)


def untested_uvicorn(version: str) -> str | None:
    """The one line that refuses uvicorn ``version``, or None when it is a release of the tested minor."""
    release = re.fullmatch(r"(\d+)\.(\d+)(\.\d+)*", version)
    if release is not None and (int(release[1]), int(release[2])) == TESTED_UVICORN_MINOR:
        return None
    return (
        f"uvicorn {version} is installed, but the gateway is tested with uvicorn {TESTED_UVICORN_RANGE} only "
        f"(it overrides uvicorn's internals): install 'uvicorn[standard]{TESTED_UVICORN_RANGE}'"
    )


def require_tested_uvicorn() -> None:
    """Exit with uvicorn's start-up failure status and one line on stderr when the imported uvicorn is untested.

    Called before any socket is bound or worker started; the workers run the same interpreter and packages."""
    refusal = untested_uvicorn(uvicorn.__version__)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        sys.exit(STARTUP_FAILURE)


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with three changes.

    - It writes through a :class:`CoalescingTransport`: uvicorn writes a response's head and its body apart, and
      they leave in one write.
    - It closes a connection that has not sent a whole request head within ``header_timeout`` seconds: from the
      connection's start, and again after each response on a kept-alive connection. (uvicorn has no such limit:
      its keep-alive timer stops counting as soon as a single byte arrives, so a slow client, slowloris, holds
      the socket as long as it likes.)
    - On a graceful stop it closes a kept-alive connection only between a response and the client's next request
      (see :meth:`shutdown`).
    """

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._stopping = False

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self._header_timeout, self._head_too_slow)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _head_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # waiting for a head, not serving a request
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))
        self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()
        if self._stopping and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with "Connection: close", then closed

    def shutdown(self) -> None:
        """The server stops (SIGTERM). uvicorn closes a kept-alive connection at once when no request is in
        progress on it, but its client may be sending the next one right then, and gets the connection closed
        with no answer (a failed request behind a load balancer or a Kubernetes Service, mid rolling update).
        Here such a connection stays open: a request that comes is answered with "Connection: close", and the
        keep-alive and head timers close it if none does. A connection serving a request closes after it."""
        self._stopping = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's supervisor (signals, health checks, dead workers replaced, SIGHUP's rolling restart), except that
    every worker it starts gets a socket of its own (``service.workers``) instead of all of them sharing one.

    uvicorn 0.55 starts each worker as ``Process(self.config, self.sockets)`` followed at once by ``start()``: at
    start-up, for a dead worker, for each worker on SIGHUP and on SIGTTIN. So here ``sockets`` is a property that
    hands out one socket at each read: the ones bound before start-up first, then a new one per replacement.

    Once a worker has started (``start()`` passes the socket to the new process), this process closes its own copy,
    so that the worker holds the socket's only descriptor and it closes with the worker: a worker that dies, or stops
    on SIGTERM or SIGHUP, leaves the port's group at once and new connections go to the others, rather than waiting
    in the accept queue of a socket nobody accepts from. (Connections already in that queue, not yet accepted, are
    reset then, unless the sysctl ``net.ipv4.tcp_migrate_req`` has the kernel move them to another worker's socket.)
    """

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        """``sockets``: from :func:`service.workers.bind_worker_sockets`, one for each of the first
        ``config.workers`` workers."""
        self._port: int = sockets[0].getsockname()[1]  # the one actually bound when config.port is 0
        self._unused: list[socket.socket] = []  # bound before start-up, for the first workers
        self._handed_out: list[socket.socket] = []  # given to workers; this process's copies, to be closed
        super().__init__(config, sockets)  # which sets self.sockets = sockets

    @property
    def sockets(self) -> list[socket.socket]:
        sock = self._unused.pop(0) if self._unused else bind_worker_socket(self.config.host, self._port)
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
