"""The error vocabulary: stable codes that carry their HTTP status, and the one error body shape.

Every error has the JSON shape ``{"error": {"code": "...", "message": "...", "index": 3}}``. Internals
never leak: an unexpected exception becomes ``internal_error`` with a generic message (service.http).
"""

from __future__ import annotations

import itertools
from enum import StrEnum
from typing import Any, Self

import orjson


class ErrorCode(StrEnum):
    """A stable error code; ``status`` is the HTTP status it is answered with."""

    status: int

    def __new__(cls, code: str, status: int) -> Self:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        return member

    empty_body = "empty_body", 400
    unsupported_media_type = "unsupported_media_type", 415
    body_too_large = "body_too_large", 413
    invalid_json = "invalid_json", 400
    invalid_request = "invalid_request", 422
    too_many_images = "too_many_images", 413
    invalid_base64 = "invalid_base64", 400
    image_decode_failed = "image_decode_failed", 400
    image_truncated = "image_truncated", 400
    image_too_large = "image_too_large", 413
    image_empty = "image_empty", 422
    invalid_pixels = "invalid_pixels", 422
    wrong_image_size = "wrong_image_size", 422
    unknown_feature_layer = "unknown_feature_layer", 422
    unknown_layer = "unknown_layer", 404
    invalid_top_k = "invalid_top_k", 422
    invalid_tensor = "invalid_tensor", 400
    invalid_binary_data = "invalid_binary_data", 400
    unknown_output = "unknown_output", 400
    unknown_model = "unknown_model", 404
    queue_full = "queue_full", 503
    not_ready = "not_ready", 503
    backend_unavailable = "backend_unavailable", 503
    backend_timeout = "backend_timeout", 504
    unauthorized = "unauthorized", 401
    quota_exceeded = "quota_exceeded", 429
    forbidden = "forbidden", 403
    version_in_use = "version_in_use", 409
    rollout_conflict = "rollout_conflict", 409
    # A model version refused at load (model/refusal.py names the same codes).
    unknown_version = "unknown_version", 404
    missing_card = "missing_card", 422
    invalid_card = "invalid_card", 422
    missing_artifact = "missing_artifact", 422
    hash_mismatch = "hash_mismatch", 422
    wrong_input_shape = "wrong_input_shape", 422
    corrupt_artifact = "corrupt_artifact", 422
    no_probes = "no_probes", 422
    failed_probe = "failed_probe", 422
    not_found = "not_found", 404
    method_not_allowed = "method_not_allowed", 405
    internal_error = "internal_error", 500


# Validation failures of these request fields have codes of their own. (A malformed ``features`` is an
# invalid request; only a well-formed name the model lacks is an unknown_feature_layer.)
FIELD_CODES: dict[str, ErrorCode] = {"top_k": ErrorCode.invalid_top_k, "pixels": ErrorCode.invalid_pixels}
# The request fields that list inputs: /v1's instances and the Open Inference Protocol's inputs.
INPUT_LISTS = ("instances", "inputs")


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
        return self.code.status

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.index is not None:
            error["index"] = self.index
        return orjson.dumps({"error": error})


def from_validation_errors(errors: list[Any]) -> ApiError:
    """The first pydantic error as an ApiError, with the code of the field it concerns."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    location = [part for part in first.get("loc", ()) if part not in ("body", "query")]
    code = next((FIELD_CODES[p] for p in location if isinstance(p, str) and p in FIELD_CODES), None)
    # ``index`` points at an input; a position in an option's list (explain.0) is not one.
    index = next((p for k, p in itertools.pairwise(location) if k in INPUT_LISTS and isinstance(p, int)), None)
    where = ".".join(str(p) for p in location) or "request"
    if first.get("type") == "json_invalid":
        return ApiError(ErrorCode.invalid_json, f"body is not valid JSON: {first.get('msg')}")
    return ApiError(code or ErrorCode.invalid_request, f"{where}: {first.get('msg')}", index=index)
