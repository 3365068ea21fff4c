"""What travels between a client (the gateway or anyone else) and TorchServe's digits handler.

Requests, ``POST /predictions/<model>``:

- ``application/octet-stream`` that starts with the ``.npy`` magic: a ready batch, normalized float32
  ``[n, 1, 28, 28]``. This is what the gateway sends: validation and preprocessing stay in the gateway.
- ``application/octet-stream`` otherwise: ``n * 784`` bytes, ``n`` 28x28 images with gray values 0-255, ink
  bright on black (MNIST convention), normalized with the model card's mean and std.
- ``application/json``: the gateway's predict body with ``pixels`` instances (28x28, 0-255) and the same
  options; ``preprocess`` must be absent or ``none`` (``auto`` needs the gateway).

For binary bodies the options travel in headers: ``X-Digits-Features`` (comma-separated layer names or
``all``), ``X-Digits-Feature-Format`` and ``X-Digits-Top-K``.

Responses are the gateway's own bodies: ``{"model", "predictions": [...]}`` with feature maps in the
gateway's formats, or ``{"error": {"code", "message", "index"?}}`` with the gateway's status for that code.
The gateway reads probabilities and ``array`` feature maps back losslessly with :func:`decode_output`.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from service.backends.base import BatchOutput
from service.errors import ApiError, ErrorCode, from_validation_errors
from service.features import resolve_layers
from service.preprocessing import FIELD, Normalization, pixel_array
from service.schemas import PredictOptions, PredictRequest

TENSOR_CONTENT_TYPE = "application/octet-stream"
FEATURES_HEADER = "X-Digits-Features"
FEATURE_FORMAT_HEADER = "X-Digits-Feature-Format"
TOP_K_HEADER = "X-Digits-Top-K"
NPY_MAGIC = b"\x93NUMPY"
IMAGE_BYTES = FIELD * FIELD


@dataclass(frozen=True)
class ParsedRequest:
    """One request, ready for the model."""

    batch: np.ndarray  # normalized float32 [n, 1, 28, 28]
    options: PredictOptions
    layers: list[str]  # feature layers to return, in network order


def encode_tensor(batch: np.ndarray) -> bytes:
    """The gateway's request body: the normalized float32 batch as ``.npy`` bytes."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(batch, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def tensor_headers(with_features: bool) -> dict[str, str]:
    """Headers of a gateway request: every feature layer (losslessly, as arrays) when asked, one top label."""
    headers = {"Content-Type": TENSOR_CONTENT_TYPE, TOP_K_HEADER: "1"}
    if with_features:
        headers |= {FEATURES_HEADER: "all", FEATURE_FORMAT_HEADER: "array"}
    return headers


def parse_request(
    body: Any, headers: Mapping[str, str], normalization: Normalization, *, layers: list[str], max_images: int
) -> ParsedRequest:
    """A request body (bytes, or the JSON TorchServe already decoded) and its headers, validated."""
    content_type = _header(headers, "content-type").split(";", 1)[0].strip().lower()
    if not isinstance(body, bytes | bytearray) or content_type == "application/json":
        return _from_request(_predict_request(body), normalization, layers, max_images)
    if not body:
        raise ApiError(ErrorCode.empty_body, "the request has no body")
    options = _header_options(headers)
    data = bytes(body)
    batch = _decode_tensor(data) if data.startswith(NPY_MAGIC) else _decode_raw_pixels(data, normalization)
    _check_count(len(batch), max_images)
    return ParsedRequest(batch, options, resolve_layers(options.features, layers))


def decode_output(body: bytes, images: int) -> BatchOutput:
    """The handler's response to :func:`encode_tensor` back into arrays (features only if they were asked for)."""
    try:
        items = orjson.loads(body)["predictions"]
        probabilities = np.asarray([item["probabilities"] for item in items], dtype=np.float32)
        features = _decode_features(items) if items and "features" in items[0] else None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ApiError(ErrorCode.internal_error, "TorchServe sent a response the gateway cannot read") from exc
    if probabilities.shape != (images, 10):
        raise ApiError(ErrorCode.internal_error, f"TorchServe answered {len(items)} predictions for {images} images")
    return BatchOutput(probabilities, features)


def _decode_features(items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    names = list(items[0]["features"])
    return {name: np.stack([_decode_array(item["features"][name]) for item in items]) for name in names}


def _decode_array(encoded: dict[str, Any]) -> np.ndarray:
    if encoded["format"] != "array":
        raise ValueError("feature maps must come back as arrays")
    array: np.ndarray = np.frombuffer(base64.b64decode(encoded["data"]), dtype="<f4").reshape(encoded["shape"])
    return array


def _predict_request(body: Any) -> PredictRequest:
    """JSON that TorchServe decoded already, or bytes it could not decode."""
    try:
        if isinstance(body, bytes | bytearray):
            if not body.strip():
                raise ApiError(ErrorCode.empty_body, "the request body is empty")
            return PredictRequest.model_validate_json(bytes(body))
        return PredictRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc


def _from_request(
    request: PredictRequest, normalization: Normalization, layers: list[str], max_images: int
) -> ParsedRequest:
    if "preprocess" in request.model_fields_set and request.preprocess != "none":
        raise ApiError(
            ErrorCode.invalid_request,
            "TorchServe takes 28x28 pixels in MNIST convention (preprocess none); send other images to the gateway",
        )
    _check_count(len(request.instances), max_images)
    batch = np.empty((len(request.instances), 1, FIELD, FIELD), dtype=np.float32)
    for index, instance in enumerate(request.instances):
        if instance.pixels is None:
            message = "TorchServe takes pixels; send encoded images to the gateway"
            raise ApiError(ErrorCode.invalid_request, message, index=index)
        values = pixel_array(instance.pixels, index)
        if values.shape != (FIELD, FIELD):
            size = f"{values.shape[1]}x{values.shape[0]}"
            raise ApiError(ErrorCode.wrong_image_size, f"TorchServe takes 28x28 pixels, got {size}", index=index)
        batch[index, 0] = normalization.apply(values)
    return ParsedRequest(batch, request, resolve_layers(request.features, layers))


def _decode_tensor(data: bytes) -> np.ndarray:
    try:
        batch: np.ndarray = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        raise ApiError(ErrorCode.invalid_request, f"unreadable .npy tensor: {exc}") from exc
    if batch.dtype != np.float32 or batch.ndim != 4 or batch.shape[1:] != (1, FIELD, FIELD) or len(batch) == 0:
        got = f"{batch.dtype} {list(batch.shape)}"
        raise ApiError(ErrorCode.invalid_request, f"the tensor must be float32 [n, 1, 28, 28], got {got}")
    if not np.isfinite(batch).all():
        raise ApiError(ErrorCode.invalid_pixels, "the tensor contains NaN or infinity")
    return batch


def _decode_raw_pixels(data: bytes, normalization: Normalization) -> np.ndarray:
    if len(data) % IMAGE_BYTES:
        raise ApiError(
            ErrorCode.wrong_image_size,
            f"raw bodies hold 28x28 images of one byte per pixel ({IMAGE_BYTES} bytes each), got {len(data)} bytes",
        )
    pixels = np.frombuffer(data, dtype=np.uint8).reshape(-1, 1, FIELD, FIELD)
    batch: np.ndarray = normalization.apply(pixels)
    return batch


def _header_options(headers: Mapping[str, str]) -> PredictOptions:
    raw: dict[str, Any] = {}
    if features := _header(headers, FEATURES_HEADER):
        raw["features"] = [name.strip() for name in features.split(",") if name.strip()]
    if feature_format := _header(headers, FEATURE_FORMAT_HEADER):
        raw["feature_format"] = feature_format
    if top_k := _header(headers, TOP_K_HEADER):
        raw["top_k"] = top_k
    try:
        return PredictOptions.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((str(value) for key, value in headers.items() if key.lower() == wanted), "")


def _check_count(count: int, max_images: int) -> None:
    if count > max_images:
        raise ApiError(ErrorCode.too_many_images, f"{count} images in one request; the limit is {max_images}")
