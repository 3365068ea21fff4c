"""Per API key quotas on the API routes: a request over its key's requests/s quota is answered 429 before its body
is read; its images are charged by the inference object once read (service/core/quotas.py)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.core.api_keys import Caller
from service.core.errors import ApiError, ErrorCode
from service.core.quotas import Quotas, release
from service.http.error_handlers import error_response


class QuotaMiddleware:
    """Charges the request to the caller the key middleware identified (``scope["state"]["caller"]``)."""

    def __init__(self, app: ASGIApp, quotas: Quotas, on_error: Callable[[ErrorCode], None]) -> None:
        self.app = app
        self.quotas = quotas
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope.get("state", {}).get("caller") if scope["type"] == "http" else None
        if not isinstance(caller, Caller):
            await self.app(scope, receive, send)
            return
        try:
            admission = self.quotas.admit(caller)
        except ApiError as error:
            self.on_error(error.code)
            await error_response(error, scope["path"])(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            release(admission)
