"""Tensor data on the wire: numeric tensors as JSON or little-endian row-major bytes, BYTES tensors as strings
or 4-byte length-prefixed elements. Failures name the tensor and raise ``invalid_tensor`` or ``invalid_binary_data``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.core.errors import ApiError, ErrorCode

BYTES = "BYTES"
# The numeric datatypes this model reads or writes, as little-endian numpy types.
NUMPY_TYPES: dict[str, np.dtype[Any]] = {
    "UINT8": np.dtype("u1"),
    "INT64": np.dtype("<i8"),
    "FP32": np.dtype("<f4"),
}
LENGTH_PREFIX_BYTES = 4  # a BYTES element's length: unsigned 32-bit, little-endian


def element_count(shape: Sequence[int]) -> int:
    return math.prod(shape)


def numeric_from_binary(data: bytes, datatype: str, shape: Sequence[int], name: str) -> np.ndarray:
    dtype = NUMPY_TYPES[datatype]
    expected = element_count(shape) * dtype.itemsize
    if len(data) != expected:
        raise ApiError(
            ErrorCode.invalid_tensor,
            f"input '{name}' has {len(data)} bytes of binary data; shape {list(shape)} of {datatype} takes {expected}",
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def numeric_from_json(data: list[Any], shape: Sequence[int], name: str) -> np.ndarray:
    """JSON numbers, flat or nested, as float32 of ``shape`` (the pixel checks judge their range afterwards)."""
    try:
        values = np.asarray(data, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise ApiError(ErrorCode.invalid_tensor, f"input '{name}' data is not a regular array of numbers") from exc
    if values.size != element_count(shape):
        raise ApiError(
            ErrorCode.invalid_tensor,
            f"input '{name}' has {values.size} values; its shape {list(shape)} needs {element_count(shape)}",
        )
    return values.reshape(shape)


def bytes_from_binary(data: bytes, count: int, name: str) -> list[bytes]:
    """``count`` elements, each a little-endian uint32 length followed by that many bytes."""
    elements: list[bytes] = []
    position = 0
    while position < len(data):
        if position + LENGTH_PREFIX_BYTES > len(data):
            raise ApiError(ErrorCode.invalid_binary_data, f"input '{name}' ends inside an element's length prefix")
        length = int.from_bytes(data[position : position + LENGTH_PREFIX_BYTES], "little")
        position += LENGTH_PREFIX_BYTES
        if position + length > len(data):
            raise ApiError(
                ErrorCode.invalid_binary_data,
                f"input '{name}' element {len(elements)} claims {length} bytes; {len(data) - position} are left",
            )
        elements.append(data[position : position + length])
        position += length
    _check_element_count(len(elements), count, name)
    return elements


def bytes_from_json(data: list[Any], count: int, name: str) -> list[str]:
    if not all(isinstance(element, str) for element in data):
        raise ApiError(ErrorCode.invalid_tensor, f"input '{name}' data must be strings (base64 of image files)")
    _check_element_count(len(data), count, name)
    return data


def _check_element_count(found: int, count: int, name: str) -> None:
    if found != count:
        raise ApiError(ErrorCode.invalid_tensor, f"input '{name}' has {found} elements; its shape says {count}")


def to_binary(values: np.ndarray, datatype: str) -> bytes:
    return np.ascontiguousarray(values, dtype=NUMPY_TYPES[datatype]).tobytes()


def to_json(values: np.ndarray) -> np.ndarray:
    """Row-major and flat: the JSON data of an output (orjson writes numpy arrays natively)."""
    return np.ascontiguousarray(values).reshape(-1)
