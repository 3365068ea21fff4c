"""Pure ASGI middleware: request metrics, and the body size limit enforced while reading."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.errors import ApiError, ErrorCode
from service.core.metrics import Metrics

UNMATCHED_ROUTE = "unmatched"


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
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
    """Refuses bodies over ``max_bytes``: from Content-Length at once, else as bytes arrive.

    The error is raised from ``receive``, so it surfaces where the route reads the body
    and goes through the central error map like any other failure. (Starlette's own
    RequestBodyLimitMiddleware replaces such responses with a plain-text 413, which would
    break the one error shape that clients rely on.)
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> ApiError:
        return ApiError(ErrorCode.body_too_large, f"request body exceeds the limit of {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        declared_too_large = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared_too_large:
                raise self._too_large()
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)
