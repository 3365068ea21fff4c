"""The one place where failures become HTTP errors.

Every error the gateway returns has the same JSON shape,
``{"error": {"code": "...", "message": "...", "index": 3}}``, a stable ``code`` from
:class:`ErrorCode`, and the status that ``STATUS`` gives that code. Internals never leak:
an unexpected exception becomes ``internal_error`` with a generic message.
"""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

log = logging.getLogger(__name__)


class ErrorCode(StrEnum):
    empty_body = "empty_body"
    unsupported_media_type = "unsupported_media_type"
    body_too_large = "body_too_large"
    invalid_json = "invalid_json"
    invalid_request = "invalid_request"
    too_many_images = "too_many_images"
    invalid_base64 = "invalid_base64"
    image_decode_failed = "image_decode_failed"
    image_truncated = "image_truncated"
    image_too_large = "image_too_large"
    image_empty = "image_empty"
    invalid_pixels = "invalid_pixels"
    wrong_image_size = "wrong_image_size"
    unknown_feature_layer = "unknown_feature_layer"
    invalid_top_k = "invalid_top_k"
    queue_full = "queue_full"
    not_ready = "not_ready"
    backend_unavailable = "backend_unavailable"
    backend_timeout = "backend_timeout"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    internal_error = "internal_error"


STATUS: dict[ErrorCode, int] = {
    ErrorCode.empty_body: 400,
    ErrorCode.unsupported_media_type: 415,
    ErrorCode.body_too_large: 413,
    ErrorCode.invalid_json: 400,
    ErrorCode.invalid_request: 422,
    ErrorCode.too_many_images: 413,
    ErrorCode.invalid_base64: 400,
    ErrorCode.image_decode_failed: 400,
    ErrorCode.image_truncated: 400,
    ErrorCode.image_too_large: 413,
    ErrorCode.image_empty: 422,
    ErrorCode.invalid_pixels: 422,
    ErrorCode.wrong_image_size: 422,
    ErrorCode.unknown_feature_layer: 422,
    ErrorCode.invalid_top_k: 422,
    ErrorCode.queue_full: 503,
    ErrorCode.not_ready: 503,
    ErrorCode.backend_unavailable: 503,
    ErrorCode.backend_timeout: 504,
    ErrorCode.not_found: 404,
    ErrorCode.method_not_allowed: 405,
    ErrorCode.internal_error: 500,
}

# Validation failures of these request fields have codes of their own.
FIELD_CODES: dict[str, ErrorCode] = {
    "top_k": ErrorCode.invalid_top_k,
    "features": ErrorCode.unknown_feature_layer,
    "pixels": ErrorCode.invalid_pixels,
}


class ApiError(Exception):
    """A failure the client should hear about, with its stable code."""

    def __init__(
        self, code: ErrorCode, message: str, *, index: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.index = index
        self.headers = headers or {}

    @property
    def status(self) -> int:
        return STATUS[self.code]


def error_body(code: ErrorCode, message: str, index: int | None = None) -> bytes:
    error: dict[str, Any] = {"code": code.value, "message": message}
    if index is not None:
        error["index"] = index
    return orjson.dumps({"error": error})


def error_response(error: ApiError) -> Response:
    return Response(
        error_body(error.code, error.message, error.index),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def from_validation_errors(errors: list[Any]) -> ApiError:
    """The first pydantic error as an ApiError, with the code of the field it concerns."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    location = [part for part in first.get("loc", ()) if part not in ("body", "query")]
    code = next((FIELD_CODES[p] for p in location if isinstance(p, str) and p in FIELD_CODES), None)
    index = next((p for p in location if isinstance(p, int)), None)
    where = ".".join(str(p) for p in location) or "request"
    if first.get("type") == "json_invalid":
        return ApiError(ErrorCode.invalid_json, f"body is not valid JSON: {first.get('msg')}")
    return ApiError(code or ErrorCode.invalid_request, f"{where}: {first.get('msg')}", index=index)


def install_error_handlers(app: FastAPI, on_error: Any = None) -> None:
    """Route every failure through :func:`error_response`; ``on_error(code)`` counts it."""

    def respond(error: ApiError) -> Response:
        if on_error is not None:
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
        return respond(ApiError(code, str(exc.detail)))

    async def handle_unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return respond(ApiError(ErrorCode.internal_error, "internal error"))

    app.add_exception_handler(ApiError, handle_api_error)
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(StarletteHTTPException, handle_http)
    app.add_exception_handler(Exception, handle_unexpected)
