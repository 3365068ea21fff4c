"""Read a predict request, JSON or multipart, into options and raw inputs, enforcing the limits.

Base64 text stays text here: the pipeline decodes it with the image, off the event loop when it is large."""

from __future__ import annotations

import orjson
from pydantic import ValidationError
from starlette.requests import Request

from service.core.errors import ApiError, ErrorCode, from_validation_errors
from service.core.inference import PredictCall
from service.core.preprocessing import byte_rows
from service.core.schemas import PredictOptions, PredictRequest
from service.core.types import Limits, RawInput
from service.http.multipart import read_files


async def read_predict_request(request: Request, limits: Limits) -> PredictCall:
    """The call a /v1 predict request makes: its options, and its inputs within ``limits``."""
    options, inputs = await _read_body(request, limits)
    return PredictCall(options, inputs)


async def _read_body(request: Request, limits: Limits) -> tuple[PredictOptions, list[RawInput]]:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return await _read_json(request, limits)
    if media_type == "multipart/form-data":
        return await _read_multipart(request, limits)
    if request.headers.get("content-length", "0") == "0" and not media_type:
        raise ApiError(ErrorCode.empty_body, "the request has no body")
    raise ApiError(
        ErrorCode.unsupported_media_type,
        f"unsupported content type {media_type or '(none)'!r}; send application/json or multipart/form-data",
    )


async def _read_json(request: Request, limits: Limits) -> tuple[PredictOptions, list[RawInput]]:
    body = await request.body()
    if not body.strip():
        raise ApiError(ErrorCode.empty_body, "the request body is empty")
    options, inputs = _eight_bit_pixels(body) or _validated(body)
    limits.check_image_count(len(inputs))
    return options, inputs


def _validated(body: bytes) -> tuple[PredictOptions, list[RawInput]]:
    try:
        parsed = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc
    return parsed, [instance.raw for instance in parsed.instances]


def _eight_bit_pixels(body: bytes) -> tuple[PredictOptions, list[RawInput]] | None:
    """What most clients send, instances of ``pixels`` rows of whole numbers 0-255 only, read by orjson and
    ``bytes()`` instead of the schema's validator, faster (docs/architecture.md) with the same result.
    ``None`` for any other body, valid or not: the schema then reads it, and says what is wrong with it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    instances = document.pop("instances", None) if isinstance(document, dict) else None
    if not isinstance(instances, list) or not instances:
        return None
    inputs: list[RawInput] = []
    for instance in instances:
        levels = byte_rows(instance["pixels"]) if isinstance(instance, dict) and instance.keys() == {"pixels"} else None
        if levels is None:
            return None
        inputs.append(levels)
    try:  # in JSON mode, as the schema reads the whole body
        options = PredictOptions.model_validate_json(orjson.dumps(document))
    except ValidationError:
        return None
    return options, inputs


async def _read_multipart(request: Request, limits: Limits) -> tuple[PredictOptions, list[RawInput]]:
    options = _query_options(request)
    files = await read_files(request, name="file", max_files=limits.max_images, max_fields=16)
    if not files:
        raise ApiError(ErrorCode.empty_body, "no part named 'file' with an image in the multipart body")
    return options, list(files)


# Query parameters that take a list: comma-separated, repeated, or both.
LIST_OPTIONS = ("features", "explain")


def _query_options(request: Request) -> PredictOptions:
    params = request.query_params
    raw: dict[str, object] = {k: v for k, v in params.items() if k not in LIST_OPTIONS}
    for option in LIST_OPTIONS:
        names = [name.strip() for value in params.getlist(option) for name in value.split(",") if name.strip()]
        if names:
            raw[option] = names
    try:
        return PredictOptions.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc
