"""Feature maps on the wire: raw float32 arrays, or one PNG per layer with its channels tiled."""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Literal

import numpy as np
from PIL import Image

from service.core.errors import ApiError, ErrorCode

FeatureFormat = Literal["array", "png"]
TILE_GAP = 1  # pixels of background between tiles in the PNG grid


def resolve_layers(requested: list[str] | None, available: list[str]) -> list[str]:
    """The layer names a request asks for, in network order; ``["all"]`` means every one."""
    if not requested:
        return []
    if requested == ["all"]:
        return list(available)
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ApiError(
            ErrorCode.unknown_feature_layer,
            f"unknown layer(s) {', '.join(unknown)}; the model has {', '.join(available)} (or ask for 'all')",
        )
    return [name for name in available if name in requested]


def grid_shape(channels: int) -> tuple[int, int]:
    """Rows and columns of the most nearly square grid that holds every channel."""
    cols = math.ceil(math.sqrt(channels))
    return math.ceil(channels / cols), cols


def tile_channels(maps: np.ndarray) -> tuple[np.ndarray, int, int]:
    """``[C, H, W]`` floats to one uint8 image, each channel scaled to its own range."""
    rows, cols = grid_shape(maps.shape[0])
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    scaled = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)
    return tile((scaled * 255.0 + 0.5).astype(np.uint8), rows, cols), rows, cols


def tile(tiles: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """uint8 tiles ``[n, H, W]`` laid out row by row in a ``rows`` x ``cols`` grid, ``TILE_GAP`` apart."""
    _, height, width = tiles.shape
    canvas = np.zeros((rows * (height + TILE_GAP) - TILE_GAP, cols * (width + TILE_GAP) - TILE_GAP), np.uint8)
    for n, image in enumerate(tiles):
        r, k = divmod(n, cols)
        top, left = r * (height + TILE_GAP), k * (width + TILE_GAP)
        canvas[top : top + height, left : left + width] = image
    return canvas


def encode_array(values: np.ndarray) -> dict[str, Any]:
    """Any float array in the ``array`` format: base64 of its little-endian float32 bytes, with its shape."""
    data = np.ascontiguousarray(values, dtype="<f4").tobytes()
    return {"format": "array", "shape": list(values.shape), "dtype": "float32", "data": base64.b64encode(data).decode()}


def signed_gray(values: np.ndarray) -> np.ndarray:
    """Signed values as uint8 gray: 0 is mid-gray, white and black the largest magnitude, positive and negative."""
    extent = float(np.abs(values).max()) or 1.0
    return np.clip(128.0 + 127.0 * values / extent + 0.5, 0, 255).astype(np.uint8)


def png_base64(image: np.ndarray) -> str:
    """A 2-D uint8 image as the base64 text of a grayscale PNG file."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def encode_feature_map(maps: np.ndarray, fmt: FeatureFormat) -> dict[str, Any]:
    """One layer's maps for one image, ``[C, H, W]``, in the response format."""
    if fmt == "array":
        return encode_array(maps)
    canvas, rows, cols = tile_channels(maps)
    _, height, width = maps.shape
    return {
        "format": "png",
        "shape": list(maps.shape),
        "data": png_base64(canvas),
        "grid": {"rows": rows, "cols": cols, "tile_height": height, "tile_width": width, "gap": TILE_GAP},
    }
