"""The binary tensor data extension's framing: a JSON header of ``Inference-Header-Content-Length`` bytes, then
each binary tensor's bytes in the order the header lists the tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from service.core.errors import ApiError, ErrorCode
from service.core.oip.schemas import Parameters

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_DATA_SIZE = "binary_data_size"


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary data after it; without the header, the whole body is JSON."""
    if header_length is None:
        return body, b""
    if not header_length.isdigit():
        raise ApiError(ErrorCode.invalid_binary_data, f"{HEADER_LENGTH} must be a byte count, got {header_length!r}")
    length = int(header_length)
    if length > len(body):
        raise ApiError(
            ErrorCode.invalid_binary_data, f"{HEADER_LENGTH} is {length}, beyond the body's {len(body)} bytes"
        )
    return body[:length], body[length:]


def binary_sizes(parameters: Sequence[Parameters]) -> list[int | None]:
    """Each tensor's ``binary_data_size`` (``None``: its data is JSON)."""
    sizes: list[int | None] = []
    for tensor_parameters in parameters:
        size = tensor_parameters.get(BINARY_DATA_SIZE)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            raise ApiError(ErrorCode.invalid_binary_data, f"{BINARY_DATA_SIZE} must be a byte count, got {size!r}")
        sizes.append(size)
    return sizes


def split_binary(data: bytes, sizes: Sequence[int | None]) -> list[bytes | None]:
    """The binary data cut into the tensors' parts; every byte after the header must belong to one."""
    declared = sum(size for size in sizes if size is not None)
    if declared != len(data):
        raise ApiError(
            ErrorCode.invalid_binary_data,
            f"the inputs' {BINARY_DATA_SIZE} add up to {declared} bytes; {len(data)} follow the JSON header",
        )
    parts: list[bytes | None] = []
    position = 0
    for size in sizes:
        if size is None:
            parts.append(None)
        else:
            parts.append(data[position : position + size])
            position += size
    return parts


def join_body(header: dict[str, Any], binary: Sequence[bytes]) -> tuple[bytes, int | None]:
    """The response body, and its header length when binary data follows the JSON (``None``: plain JSON)."""
    encoded = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    if not binary:
        return encoded, None
    return b"".join((encoded, *binary)), len(encoded)
