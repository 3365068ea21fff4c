"""The one place where failures become HTTP responses, every one in the core's error shape."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.core.errors import ApiError, ErrorCode, from_validation_errors
from service.core.oip import errors as oip_errors

log = logging.getLogger(__name__)


def error_response(error: ApiError, path: str) -> Response:
    """The error in our shape, or under the Open Inference Protocol's routes in the protocol's shape."""
    body = oip_errors.error_body(error) if oip_errors.speaks_protocol(path) else error.body()
    return Response(body, status_code=error.status, media_type="application/json", headers=error.headers)


class ErrorResponder:
    """Turns any exception an endpoint raises into :func:`error_response`; ``on_error(code)`` counts it.

    FastAPI calls it as the handler of every exception type (:meth:`install`), and
    :class:`~service.http.request_route.DirectRoutes` calls it for the routes it serves itself.
    """

    def __init__(self, on_error: Callable[[ErrorCode], None]) -> None:
        self.on_error = on_error

    def install(self, app: FastAPI) -> None:
        for exception_type in (ApiError, RequestValidationError, StarletteHTTPException, Exception):
            app.add_exception_handler(exception_type, self)

    async def __call__(self, request: Request, exc: Exception) -> Response:
        error = api_error(exc)
        self.on_error(error.code)
        return error_response(error, request.url.path)


def api_error(exc: Exception) -> ApiError:
    """What the client is told about ``exc``: an unexpected one is logged here and told nothing but its code."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, RequestValidationError):
        return from_validation_errors(list(exc.errors()))
    if isinstance(exc, StarletteHTTPException):
        code = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed}.get(exc.status_code)
        if code is None:
            code = ErrorCode.invalid_request if exc.status_code < 500 else ErrorCode.internal_error
        return ApiError(code, str(exc.detail), headers=dict(exc.headers or {}))  # 405 keeps Allow
    log.exception("unhandled error", exc_info=exc)
    return ApiError(ErrorCode.internal_error, "internal error")
