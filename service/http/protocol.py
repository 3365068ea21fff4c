"""The gateway's HTTP protocol: uvicorn's httptools protocol with three changes, a time limit on request heads
(which uvicorn lacks: slow clients, slowloris, hold a socket that long only), a response's head and body sent
in one write, and a graceful stop that closes kept-alive connections only between a response and the client."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.http.coalescing_transport import CoalescingTransport


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, writing through a :class:`CoalescingTransport`, and closing a connection that has
    not sent a whole request head within ``header_timeout`` seconds: from the connection's start, and again after
    each response on a kept-alive connection. (uvicorn's own keep-alive timer stops counting as soon as a single
    byte arrives.)"""

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
