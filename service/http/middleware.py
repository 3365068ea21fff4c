"""Pure ASGI middleware: request metrics, and the body size limit with its lingering close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.errors import ApiError, ErrorCode
from service.core.metrics import Metrics
from service.http.error_handlers import error_response

UNMATCHED_ROUTE = "unmatched"
# The scope key of a request's arrival (perf_counter seconds): the start of its first stage (service/core/telemetry).
ARRIVED = "digits.arrived"


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = scope[ARRIVED] = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.inflight.dec()
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            self.metrics.observe_request(route, scope["method"], status, time.perf_counter() - started)


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_bytes``, and closes a refused request's connection in a way clients can read.

    A declared ``Content-Length`` over the limit is answered 413 before any body is read. A body that
    grows past the limit while it streams raises the error from ``receive``, where the route reads it,
    so it goes through the central error map like any other failure. (Starlette's own
    RequestBodyLimitMiddleware answers a plain-text 413, which would break the one error shape.)

    Lingering close, as nginx does it: whenever a response ends while the client is still sending its
    body (a 413, a 401, a 503 given before reading), the rest of the body is read and dropped, up to
    ``linger_max_bytes`` and ``linger_seconds``, before the connection closes. Closing on unread data
    makes the kernel send a reset, and clients that write the whole body before reading (urllib,
    requests, aiohttp) then see the reset instead of the answer.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        linger_max_bytes: int,
        linger_seconds: float,
        on_error: Callable[[ErrorCode], None],
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.linger_max_bytes = linger_max_bytes
        self.linger_seconds = linger_seconds
        self.on_error = on_error

    def _too_large(self) -> ApiError:
        return ApiError(ErrorCode.body_too_large, f"request body exceeds the limit of {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        # A client that asked for "100 Continue" and got a final answer instead sends no body: nothing to drain.
        body_unread = (declared not in (None, b"0") or b"transfer-encoding" in headers) and headers.get(
            b"expect", b""
        ).lower() != b"100-continue"
        received = 0

        async def limited_receive() -> Message:
            nonlocal received, body_unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_unread = False
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        async def lingering_send(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False) and body_unread:
                await send({**message, "more_body": True})  # the whole answer is out before the drain
                await self._drain(receive)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            error = self._too_large()
            self.on_error(error.code)
            await error_response(error, scope["path"])(scope, receive, lingering_send)
            return
        await self.app(scope, limited_receive, lingering_send)

    async def _drain(self, receive: Receive) -> None:
        drained = 0
        give_up_at = time.monotonic() + self.linger_seconds
        while drained <= self.linger_max_bytes:
            try:
                message = await asyncio.wait_for(receive(), give_up_at - time.monotonic())
            except TimeoutError:
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            drained += len(message.get("body", b""))
