"""Per API key quotas on the API routes: a request over its key's requests/s quota is answered 429 before its body
is read; its images are charged by the inference object once read (service/core/quotas.py). Paths that run no model
(the dashboard's own polls) are left unmetered: a key's quota is for inference."""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Receive, Scope, Send

from service.core.api_keys import Caller
from service.core.errors import ApiError, ErrorCode
from service.core.quotas import Quotas, release
from service.http.error_handlers import error_response


class QuotaMiddleware:
    """Charges the request to the caller the key middleware identified (``scope["state"]["caller"]``)."""

    def __init__(
        self,
        app: ASGIApp,
        quotas: Quotas,
        on_error: Callable[[ErrorCode], None],
        unmetered: Collection[str] = frozenset(),
    ) -> None:
        self.app = app
        self.quotas = quotas
        self.on_error = on_error
        self.unmetered = frozenset(unmetered)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope.get("state", {}).get("caller") if scope["type"] == "http" else None
        if not isinstance(caller, Caller) or scope["path"] in self.unmetered:
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
