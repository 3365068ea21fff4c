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
    channels, height, width = maps.shape
    rows, cols = grid_shape(channels)
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    scaled = np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)
    tiles = (scaled * 255.0 + 0.5).astype(np.uint8)
    canvas = np.zeros((rows * (height + TILE_GAP) - TILE_GAP, cols * (width + TILE_GAP) - TILE_GAP), np.uint8)
    for c in range(channels):
        r, k = divmod(c, cols)
        top, left = r * (height + TILE_GAP), k * (width + TILE_GAP)
        canvas[top : top + height, left : left + width] = tiles[c]
    return canvas, rows, cols


def encode_feature_map(maps: np.ndarray, fmt: FeatureFormat) -> dict[str, Any]:
    """One layer's maps for one image, ``[C, H, W]``, in the response format."""
    shape = list(maps.shape)
    if fmt == "array":
        data = np.ascontiguousarray(maps, dtype="<f4").tobytes()
        return {"format": "array", "shape": shape, "dtype": "float32", "data": base64.b64encode(data).decode()}
    canvas, rows, cols = tile_channels(maps)
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return {
        "format": "png",
        "shape": shape,
        "data": base64.b64encode(buffer.getvalue()).decode(),
        "grid": {"rows": rows, "cols": cols, "tile_height": shape[1], "tile_width": shape[2], "gap": TILE_GAP},
    }
