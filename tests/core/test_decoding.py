from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from service.core.decoding import decode_base64, decode_image
from service.core.errors import ApiError, ErrorCode
from tests.uploads import encode


def digit() -> np.ndarray:
    image = np.full((40, 30), 255, np.uint8)
    image[5:35, 12:18] = 0
    return image


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF"])
def test_decodes_every_common_format(fmt: str) -> None:
    gray = decode_image(encode(digit(), fmt), max_pixels=10**6, index=0)
    assert gray.shape == (40, 30)
    assert gray[20, 15] < 60 and gray[2, 2] > 200


def test_transparent_background_counts_as_paper() -> None:
    rgba = np.zeros((20, 20, 4), np.uint8)  # fully transparent black...
    rgba[5:15, 8:12] = (0, 0, 0, 255)  # ...with an opaque black stroke
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    gray = decode_image(buffer.getvalue(), max_pixels=10**6, index=0)
    assert gray[0, 0] == 255 and gray[10, 10] == 0


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` but carries almost no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("size", [(5000, 5000), (100_000, 100_000)])
def test_decompression_bomb_is_refused_from_the_header(size: tuple[int, int]) -> None:
    with pytest.raises(ApiError) as excinfo:
        decode_image(png_header_only(*size), max_pixels=16_000_000, index=2)
    assert excinfo.value.code == ErrorCode.image_too_large
    assert excinfo.value.index == 2


def test_truncated_image() -> None:
    data = encode(np.random.default_rng(0).integers(0, 255, (200, 200)).astype(np.uint8), "PNG")
    with pytest.raises(ApiError) as excinfo:
        decode_image(data[: len(data) // 2], max_pixels=10**6, index=0)
    assert excinfo.value.code == ErrorCode.image_truncated


@pytest.mark.parametrize("data", [b"not an image at all", b"\x00" * 100, b""])
def test_not_an_image(data: bytes) -> None:
    with pytest.raises(ApiError) as excinfo:
        decode_image(data, max_pixels=10**6, index=0)
    assert excinfo.value.code == ErrorCode.image_decode_failed


def test_invalid_base64() -> None:
    with pytest.raises(ApiError) as excinfo:
        decode_base64("not base64!!", 1)
    assert excinfo.value.code == ErrorCode.invalid_base64 and excinfo.value.index == 1
