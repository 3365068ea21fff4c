"""Turn uploaded bytes into a grayscale array, refusing anything that is not a sane image."""

from __future__ import annotations

import base64
import binascii
import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.core.errors import ApiError, ErrorCode

# Our own pixel limit (a setting) is checked from the header before any pixel is decoded;
# Pillow's bomb guard stays on as a second line and only ever fires for absurd headers.
Image.MAX_IMAGE_PIXELS = 200_000_000


def decode_base64(text: str, index: int) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(ErrorCode.invalid_base64, f"image is not valid base64: {exc}", index=index) from exc


def decode_image(data: bytes, *, max_pixels: int, index: int) -> np.ndarray:
    """Grayscale ``uint8 [H, W]`` of the first frame; transparent areas count as white paper."""
    if not data:
        raise ApiError(ErrorCode.image_decode_failed, "image is empty (0 bytes)", index=index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise ApiError(ErrorCode.image_decode_failed, "not an image in a format we can decode", index=index) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ApiError(ErrorCode.image_too_large, "image dimensions are too large", index=index) from exc
    except Exception as exc:
        raise ApiError(ErrorCode.image_decode_failed, "image header could not be read", index=index) from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ApiError(
            ErrorCode.image_too_large,
            f"image is {width}x{height} = {width * height} pixels, the limit is {max_pixels}",
            index=index,
        )
    if width == 0 or height == 0:
        raise ApiError(ErrorCode.image_decode_failed, "image has no pixels", index=index)
    try:
        image.load()
    except OSError as exc:
        code = ErrorCode.image_truncated if "truncated" in str(exc) else ErrorCode.image_decode_failed
        raise ApiError(code, f"image data could not be decoded: {exc}", index=index) from exc
    except Exception as exc:
        raise ApiError(ErrorCode.image_decode_failed, "image data could not be decoded", index=index) from exc
    return _to_gray(image)


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values: np.ndarray = np.asarray(image, dtype=np.float64)
        span = float(values.max() - values.min()) or 1.0
        scaled: np.ndarray = ((values - values.min()) * (255.0 / span)).astype(np.uint8)
        return scaled
    if image.mode != "L":  # converting an 8-bit gray image would only copy it
        image = image.convert("L")
    gray: np.ndarray = np.asarray(image, dtype=np.uint8)
    return gray
