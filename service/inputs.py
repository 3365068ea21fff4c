"""Read a predict request, JSON or multipart, into options and raw inputs, enforcing the limits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from service.decoding import decode_base64, decode_image
from service.errors import ApiError, ErrorCode, from_validation_errors
from service.preprocessing import Normalization, pixel_array, to_mnist_field
from service.schemas import PredictOptions, PredictRequest

RawInput = bytes | np.ndarray  # an encoded image file, or a 2-D array of gray values


@dataclass(frozen=True)
class Limits:
    max_images: int
    max_pixels: int


async def read_predict_request(request: Request, limits: Limits) -> tuple[PredictOptions, list[RawInput]]:
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


def _check_count(count: int, limits: Limits) -> None:
    if count > limits.max_images:
        raise ApiError(ErrorCode.too_many_images, f"{count} images in one request; the limit is {limits.max_images}")


async def _read_json(request: Request, limits: Limits) -> tuple[PredictOptions, list[RawInput]]:
    body = await request.body()
    if not body.strip():
        raise ApiError(ErrorCode.empty_body, "the request body is empty")
    try:
        parsed = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc
    _check_count(len(parsed.instances), limits)
    inputs: list[RawInput] = []
    for index, instance in enumerate(parsed.instances):
        if instance.image is not None:
            inputs.append(decode_base64(instance.image, index))
        else:
            inputs.append(pixel_array(instance.pixels or [], index))
    return parsed, inputs


async def _read_multipart(request: Request, limits: Limits) -> tuple[PredictOptions, list[RawInput]]:
    options = _query_options(request)
    try:
        form = await request.form(max_files=limits.max_images, max_fields=16)
    except (MultiPartException, HTTPException) as exc:  # Starlette wraps parser errors in a 400 HTTPException
        detail = str(exc.detail if isinstance(exc, HTTPException) else exc.message)
        if "Too many files" in detail:
            raise ApiError(ErrorCode.too_many_images, f"too many files; the limit is {limits.max_images}") from exc
        raise ApiError(ErrorCode.invalid_request, f"malformed multipart body: {detail}") from exc
    try:
        files = [part for part in form.getlist("file") if isinstance(part, UploadFile)]
        if not files:
            raise ApiError(ErrorCode.empty_body, "no part named 'file' with an image in the multipart body")
        _check_count(len(files), limits)
        return options, [await part.read() for part in files]
    finally:
        await form.close()


def _query_options(request: Request) -> PredictOptions:
    params = request.query_params
    raw: dict[str, object] = {k: v for k, v in params.items() if k != "features"}
    features = [name.strip() for value in params.getlist("features") for name in value.split(",") if name.strip()]
    if features:
        raw["features"] = features
    try:
        return PredictOptions.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc


def prepare_batch(
    inputs: list[RawInput], options: PredictOptions, normalization: Normalization, limits: Limits
) -> np.ndarray:
    """Decode and preprocess every input into the normalized float32 ``[n, 1, 28, 28]`` batch."""
    batch = np.empty((len(inputs), 1, 28, 28), dtype=np.float32)
    for index, raw in enumerate(inputs):
        gray = decode_image(raw, max_pixels=limits.max_pixels, index=index) if isinstance(raw, bytes) else raw
        if not isinstance(raw, bytes) and gray.size > limits.max_pixels:
            raise ApiError(ErrorCode.image_too_large, f"pixels has more than {limits.max_pixels} values", index=index)
        batch[index, 0] = normalization.apply(to_mnist_field(gray, options.preprocess, index))
    return batch
