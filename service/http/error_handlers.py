"""The one place where failures become HTTP responses, every one in the core's error shape."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.core.errors import ApiError, ErrorCode, from_validation_errors

log = logging.getLogger(__name__)


def error_response(error: ApiError) -> Response:
    return Response(error.body(), status_code=error.status, media_type="application/json", headers=error.headers)


def install_error_handlers(app: FastAPI, on_error: Callable[[ErrorCode], None]) -> None:
    """Route every failure through :func:`error_response`; ``on_error(code)`` counts it."""

    def respond(error: ApiError) -> Response:
        on_error(error.code)
        return error_response(error)

    async def handle_api_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return respond(exc)

    async def handle_validation(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return respond(from_validation_errors(list(exc.errors())))

    async def handle_http(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed}.get(exc.status_code)
        if code is None:
            code = ErrorCode.invalid_request if exc.status_code < 500 else ErrorCode.internal_error
        return respond(ApiError(code, str(exc.detail), headers=dict(exc.headers or {})))  # 405 keeps its Allow

    async def handle_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return respond(ApiError(ErrorCode.internal_error, "internal error"))

    app.add_exception_handler(ApiError, handle_api_error)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
