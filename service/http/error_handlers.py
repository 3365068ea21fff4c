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


def install_error_handlers(app: FastAPI, on_error: Callable[[ErrorCode], None]) -> None:
    """Route every failure through :func:`error_response`; ``on_error(code)`` counts it."""

    def respond(request: Request, error: ApiError) -> Response:
        on_error(error.code)
        return error_response(error, request.url.path)

    async def handle_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return respond(request, exc)

    async def handle_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return respond(request, from_validation_errors(list(exc.errors())))

    async def handle_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: ErrorCode.not_found, 405: ErrorCode.method_not_allowed}.get(exc.status_code)
        if code is None:
            code = ErrorCode.invalid_request if exc.status_code < 500 else ErrorCode.internal_error
        return respond(request, ApiError(code, str(exc.detail), headers=dict(exc.headers or {})))  # 405 keeps Allow

    async def handle_unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return respond(request, ApiError(ErrorCode.internal_error, "internal error"))

    app.add_exception_handler(ApiError, handle_api_error)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
