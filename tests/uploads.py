"""MNIST digits turned into the kind of files real users upload."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def encode(gray: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(gray.astype(np.uint8)).save(buffer, format=fmt, **params)
    return buffer.getvalue()


def realistic_upload(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """Dark ink on light paper, upscaled, off-centre with margins, a little noise, JPEG-compressed."""
    scale = int(rng.integers(2, 9))
    paper = int(rng.integers(200, 256))
    ink = int(rng.integers(0, 60))
    big = np.asarray(Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC), np.float32)
    page = paper - (paper - ink) * (big / 255.0)
    height, width = page.shape
    top, bottom, left, right = (int(rng.integers(0, 3 * scale * 10 + 1)) for _ in range(4))
    canvas = np.full((height + top + bottom, width + left + right), float(paper), np.float32)
    canvas[top : top + height, left : left + width] = page
    canvas += rng.normal(0, 4, canvas.shape)
    return encode(np.clip(canvas, 0, 255), "JPEG", quality=int(rng.integers(60, 95)))
