"""What travels between the gateway and TorchServe's digits handler: tensors both ways.

Gateway to TorchServe, ``POST /predictions/<model>``: the normalized float32 batch ``[n, 1, 28, 28]`` as
``.npy`` bytes (``application/octet-stream``), and in ``X-Digits-Layers`` the union of the feature layers that
the batch's requests asked for, with ``saliency`` (of each image's predicted class) or ``saliency.<class>`` when
they ask to explain it (comma-separated; absent: none).

TorchServe to the gateway: ``probabilities`` ``[n, 10]``, one array per requested layer ``[n, C, H, W]`` and per
requested saliency ``[n, 28, 28]``, all float32: a JSON line naming each array with its shape, in order
(``{"probabilities": [n, 10], "pool2": [n, 64, 3, 3]}``), then their little-endian bytes back to back. The
container adds that one line and nothing else (``.npz`` added about 0.6 KB, a quarter of the smallest layer of
one image); or on failure the error body ``{"error": {...}}`` with that error's status. The public JSON is built
once, by the gateway.

TorchServe also takes the public predict JSON with 28x28 ``pixels`` (``preprocess`` absent or ``none``) and
answers the public predict body: the format of clients that call TorchServe directly, such as
``digits benchmark --targets torchserve``; ``explain`` is the gateway's alone.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

import numpy as np
import orjson
from pydantic import ValidationError

from service.core.errors import ApiError, ErrorCode, from_validation_errors
from service.core.features import resolve_layers
from service.core.pipeline import Pipeline
from service.core.preprocessing import FIELD
from service.core.schemas import PredictRequest
from service.core.types import BatchOutput, RawInput

TENSOR_CONTENT_TYPE = "application/octet-stream"
LAYERS_HEADER = "X-Digits-Layers"
PROBABILITIES = "probabilities"
NPY_MAGIC = b"\x93NUMPY"
FLOAT32 = np.dtype("<f4")


@dataclass(frozen=True)
class TensorRequest:
    """A gateway batch, ready for the model."""

    batch: np.ndarray  # normalized float32 [n, 1, 28, 28]
    layers: frozenset[str]


def is_tensor(body: object) -> TypeGuard[bytes | bytearray]:
    return isinstance(body, bytes | bytearray) and bytes(body[: len(NPY_MAGIC)]) == NPY_MAGIC


def encode_request(batch: np.ndarray, layers: frozenset[str]) -> tuple[bytes, dict[str, str]]:
    """The gateway's request: body and headers."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(batch, dtype=np.float32), allow_pickle=False)
    headers = {"Content-Type": TENSOR_CONTENT_TYPE}
    if layers:
        headers[LAYERS_HEADER] = ",".join(sorted(layers))
    return buffer.getvalue(), headers


def decode_request(body: bytes, headers: Mapping[str, str], known_outputs: list[str], max_images: int) -> TensorRequest:
    """The handler's reading of :func:`encode_request`, validated."""
    try:
        batch: np.ndarray = np.load(io.BytesIO(body), allow_pickle=False)
    except ValueError as exc:
        raise ApiError(ErrorCode.invalid_request, f"unreadable .npy tensor: {exc}") from exc
    if batch.dtype != np.float32 or batch.ndim != 4 or batch.shape[1:] != (1, FIELD, FIELD) or len(batch) == 0:
        raise ApiError(ErrorCode.invalid_request, f"the tensor must be float32 [n, 1, 28, 28], got {batch.dtype} "
                       f"{list(batch.shape)}")  # fmt: skip
    if len(batch) > max_images:
        raise ApiError(ErrorCode.too_many_images, f"{len(batch)} images in one request; the limit is {max_images}")
    if not np.isfinite(batch).all():
        raise ApiError(ErrorCode.invalid_pixels, "the tensor contains NaN or infinity")
    requested = [name.strip() for name in _header(headers, LAYERS_HEADER).split(",") if name.strip()]
    return TensorRequest(batch, frozenset(resolve_layers(requested, known_outputs)))


def encode_response(output: BatchOutput) -> bytes:
    """The handler's answer to a tensor request: probabilities and the requested layers (see the module's
    docstring)."""
    arrays = [(PROBABILITIES, output.probabilities), *output.features.items()]
    shapes = orjson.dumps({name: list(array.shape) for name, array in arrays})
    return b"".join([shapes, b"\n", *(np.ascontiguousarray(array, dtype=FLOAT32).tobytes() for _, array in arrays)])


def decode_response(body: bytes, images: int, layers: frozenset[str]) -> BatchOutput:
    """The gateway's reading of :func:`encode_response`; anything else is an internal error."""
    try:
        end = body.index(b"\n")
        arrays: dict[str, np.ndarray] = {}
        offset = end + 1
        for name, shape in orjson.loads(body[:end]).items():
            count = math.prod(shape)
            arrays[name] = np.frombuffer(body, FLOAT32, count, offset).reshape(shape)
            offset += count * 4
        if offset != len(body):
            raise ValueError(f"{len(body) - offset} bytes after the arrays")
        probabilities = arrays[PROBABILITIES]
        features = {name: arrays[name] for name in layers}
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise ApiError(ErrorCode.internal_error, "TorchServe sent a response the gateway cannot read") from exc
    if probabilities.shape != (images, 10) or any(len(maps) != images for maps in features.values()):
        raise ApiError(ErrorCode.internal_error, f"TorchServe answered {len(probabilities)} rows for {images} images")
    return BatchOutput(probabilities, features)


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((str(value) for key, value in headers.items() if key.lower() == wanted), "")


@dataclass(frozen=True)
class DirectRequest:
    """A direct client's public predict request with 28x28 pixels, ready for the model."""

    batch: np.ndarray
    request: PredictRequest
    layers: list[str]


def decode_direct_request(body: object, pipeline: Pipeline) -> DirectRequest:
    """The public predict JSON (decoded by TorchServe already, or bytes it could not decode), pixels only."""
    try:
        if isinstance(body, bytes | bytearray):
            if not body.strip():
                raise ApiError(ErrorCode.empty_body, "the request body is empty")
            request = PredictRequest.model_validate_json(bytes(body))
        else:
            request = PredictRequest.model_validate(body)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc
    if "preprocess" in request.model_fields_set and request.preprocess != "none":
        raise ApiError(
            ErrorCode.invalid_request,
            "TorchServe takes 28x28 pixels in MNIST convention (preprocess none); send other images to the gateway",
        )
    if request.explain:
        raise ApiError(ErrorCode.invalid_request, "explain is answered by the gateway; send the request there")
    count, limit = len(request.instances), pipeline.limits.max_images
    if count > limit:
        raise ApiError(ErrorCode.too_many_images, f"{count} images in one request; the limit is {limit}")
    inputs: list[RawInput] = []
    for index, instance in enumerate(request.instances):
        if instance.pixels is None:
            message = "TorchServe takes pixels; send images to the gateway"
            raise ApiError(ErrorCode.invalid_request, message, index=index)
        inputs.append(instance.pixels)
    return DirectRequest(pipeline.prepare(inputs, "none"), request, pipeline.layers(request.features))
