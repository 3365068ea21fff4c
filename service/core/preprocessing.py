"""Make real-world digits look like MNIST digits, the way MNIST itself was made.

``auto`` takes any grayscale image (a photo or scan, dark ink on light paper or the
reverse, any size, off-centre, with margins) and:

1. detects the polarity from the border (the paper) and inverts so ink is bright;
2. subtracts the paper level and crops to the ink's bounding box;
3. scales the longer side to 20 px, keeping the aspect ratio, with antialiasing;
4. places it in a 28x28 field so that the ink's centre of mass is at the centre;
5. (the pipeline then normalizes it with the model card's input spec).

``none`` accepts only 28x28 inputs already in MNIST convention (ink bright on black,
values 0-255) as they are.

An explanation may pass a :class:`StageRecorder` to keep the image after each step; without one the
steps run exactly as they would otherwise (a ``None`` check per step).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

from service.core.errors import ApiError, ErrorCode

FIELD = 28
BOX = 20
# Ink is what stands this far above the paper, as a fraction of the darkest stroke:
# low enough to keep faint strokes, high enough to ignore JPEG ringing and paper grain.
INK_THRESHOLD = 0.25
# Below this contrast (out of 255) there is no ink at all, only paper.
MIN_CONTRAST = 24.0

Mode = Literal["auto", "none"]
Stage = Literal["grayscale", "polarity", "cropped", "scaled", "centred"]


class StageRecorder:
    """The images ``auto`` preprocessing went through, in order: what ``explain=preprocessing`` shows."""

    def __init__(self) -> None:
        self.images: list[tuple[Stage, np.ndarray]] = []

    def record(self, stage: Stage, image: np.ndarray) -> None:
        self.images.append((stage, image))  # never written to afterwards: no copy needed


def pixel_rows(value: object) -> np.ndarray:
    """JSON rows of gray values as a float32 ``[H, W]`` array. numpy converts the whole nested list at once
    (per-element validation costs about twice as much); a ValueError says what is wrong."""
    try:
        values = np.array(value)
    except ValueError as exc:  # ragged rows
        raise ValueError("pixels must be rows of numbers of equal length") from exc
    if values.dtype.kind not in "iuf":  # strings, booleans, nulls, numbers too large for 64 bits
        raise ValueError("pixels must be rows of numbers")
    problem = pixel_problem(values)
    if problem:
        raise ValueError(problem)
    return values.astype(np.float32, copy=False)


def check_pixels(values: np.ndarray, index: int) -> None:
    problem = pixel_problem(values)
    if problem:
        raise ApiError(ErrorCode.invalid_pixels, problem, index=index)


def pixel_problem(values: np.ndarray) -> str | None:
    """Why an array of gray values is not an image (not 2-D, empty, non-finite, outside 0-255), or None."""
    if values.ndim != 2:
        return f"pixels must be a 2-D array, got {values.ndim}-D"
    if values.size == 0:
        return "pixels is empty"
    if not (values.min() >= 0 and values.max() <= 255):  # also false for NaN, which fails every comparison
        if not np.isfinite(values).all():
            return "pixels contains NaN or infinity"
        return "pixel values must lie in 0-255"
    return None


def to_mnist_field(gray: np.ndarray, mode: Mode, index: int, stages: StageRecorder | None = None) -> np.ndarray:
    """A 28x28 float32 field with values 0-255, ink bright, ready for normalization; ``stages`` (``auto`` only)
    keeps the image after each step."""
    if mode == "none":
        if gray.shape != (FIELD, FIELD):
            raise ApiError(
                ErrorCode.wrong_image_size,
                f"preprocess=none takes 28x28 inputs, got {gray.shape[1]}x{gray.shape[0]}; use preprocess=auto",
                index=index,
            )
        return gray.astype(np.float32, copy=False)
    return _mnistify(gray.astype(np.float32, copy=False), index, stages)


def _mnistify(gray: np.ndarray, index: int, stages: StageRecorder | None) -> np.ndarray:
    if stages is not None:
        stages.record("grayscale", gray)
    paper = _median(np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]]))
    if paper > 127.5:
        gray, paper = 255.0 - gray, 255.0 - paper
    if stages is not None:
        stages.record("polarity", gray)
    ink = np.clip(gray - paper, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        raise ApiError(ErrorCode.image_empty, "no ink found: the image is blank or has no contrast", index=index)
    strokes = ink >= INK_THRESHOLD * peak
    rows = np.flatnonzero(strokes.any(axis=1))
    cols = np.flatnonzero(strokes.any(axis=0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] * (255.0 / peak)
    if stages is not None:
        stages.record("cropped", crop)
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    digit = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS), dtype=np.float32)
    digit = np.clip(digit, 0.0, 255.0)
    field = _centre_by_mass(digit)
    if stages is not None:
        stages.record("scaled", digit)
        stages.record("centred", field)
    return field


def _median(values: np.ndarray) -> float:
    """np.median without its generality: a tenth of the time on the few hundred values of a border."""
    middle = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, middle)[middle])
    low, high = np.partition(values, (middle - 1, middle))[middle - 1 : middle + 1]
    return (float(low) + float(high)) / 2


def _centre_by_mass(digit: np.ndarray) -> np.ndarray:
    height, width = digit.shape
    row_mass, col_mass = digit.sum(axis=1), digit.sum(axis=0)
    mass = float(row_mass.sum())
    cy = float(row_mass @ np.arange(height, dtype=np.float32)) / mass
    cx = float(col_mass @ np.arange(width, dtype=np.float32)) / mass
    top = round(FIELD / 2 - 0.5 - cy)
    left = round(FIELD / 2 - 0.5 - cx)
    # Keep the whole box inside the field even when the mass sits far off its centre.
    top = min(max(top, 0), FIELD - height)
    left = min(max(left, 0), FIELD - width)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field
