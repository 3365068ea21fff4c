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
steps run exactly as they would otherwise (a ``None`` check per step). The drift monitor may pass a list that
gets each input's :class:`InputStats`, the by-products of these steps (nothing is computed for it alone but the
ink of a ``none`` field).
"""

from __future__ import annotations

from itertools import chain
from typing import Literal, NamedTuple

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


PreprocessPath = Literal["image", "pixels", "none"]


class InputStats(NamedTuple):
    """What preprocessing found out about one input on its way to the field (NaN: not measured on its path)."""

    ink: float  # mean brightness of the 28x28 field, 0-1
    box_fill: float  # the ink box's longer side over the image's longer side
    box_aspect: float  # the ink box's width over its height
    mass_offset_x: float  # the ink's centre of mass right of the scaled box's centre, in field pixels
    mass_offset_y: float  # ... below it
    inverted: float  # 1.0: the paper was light, so the image was inverted
    path: PreprocessPath  # image: a decoded file (8-bit levels); pixels: gray values; none: taken as they are


NAN = float("nan")


class StageRecorder:
    """The images ``auto`` preprocessing went through, in order: what ``explain=preprocessing`` shows."""

    def __init__(self) -> None:
        self.images: list[tuple[Stage, np.ndarray]] = []

    def record(self, stage: Stage, image: np.ndarray) -> None:
        self.images.append((stage, image))  # never written to afterwards: no copy needed


def pixel_rows(value: object) -> np.ndarray:
    """JSON rows of gray values as a float32 ``[H, W]`` array. numpy converts the whole nested list at once
    (per-element validation costs about twice as much); a ValueError says what is wrong."""
    levels = byte_rows(value)
    if levels is not None:
        return levels
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


def byte_rows(value: object) -> np.ndarray | None:
    """Rows of whole numbers 0-255, what most clients send, read by ``bytes()`` at half numpy's cost, as a
    float32 ``[H, W]`` array; None for anything else, which takes numpy's general path and gets its
    answer. A first value that is a boolean goes that way too: numpy refuses rows of booleans only, and
    ``bytes()`` would read them as 0 and 1."""
    if not (isinstance(value, list) and value and isinstance(value[0], list) and value[0]):
        return None
    width = len(value[0])
    if isinstance(value[0][0], bool) or any(not isinstance(row, list) or len(row) != width for row in value):
        return None
    try:
        levels = bytes(chain.from_iterable(value))  # TypeError for other values, ValueError outside 0-255
    except (TypeError, ValueError):
        return None
    return np.frombuffer(levels, np.uint8).reshape(len(value), width).astype(np.float32)


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


def to_mnist_field(
    gray: np.ndarray,
    mode: Mode,
    index: int,
    stages: StageRecorder | None = None,
    measured: list[InputStats] | None = None,
) -> np.ndarray:
    """A 28x28 float32 field with values 0-255, ink bright, ready for normalization; ``stages`` (``auto`` only)
    keeps the image after each step; ``measured`` gets the input's statistics."""
    if mode == "none":
        if gray.shape != (FIELD, FIELD):
            raise ApiError(
                ErrorCode.wrong_image_size,
                f"preprocess=none takes 28x28 inputs, got {gray.shape[1]}x{gray.shape[0]}; use preprocess=auto",
                index=index,
            )
        field = gray.astype(np.float32, copy=False)
        if measured is not None:
            measured.append(InputStats(float(field.sum()) / (255.0 * FIELD * FIELD), NAN, NAN, NAN, NAN, NAN, "none"))
        return field
    if gray.dtype != np.uint8:
        gray = gray.astype(np.float32, copy=False)
    return _mnistify(gray, index, stages, measured)


# Every gray level of an 8-bit image, as float32: the ink of a decoded image is worked out for these 256 values
# and looked up, rather than computed for every pixel.
LEVELS = np.arange(256, dtype=np.float32)


def _mnistify(
    gray: np.ndarray, index: int, stages: StageRecorder | None, measured: list[InputStats] | None
) -> np.ndarray:
    """``gray`` is uint8 (a decoded image) or float32 (gray values); both give the same field for the same values."""
    paper = _median(np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]]))
    inverted = paper > 127.5
    if stages is not None:
        as_float = gray.astype(np.float32, copy=False)
        stages.record("grayscale", as_float)
        stages.record("polarity", 255.0 - as_float if inverted else as_float)
    if gray.dtype == np.uint8:
        # A pixel's ink depends on its gray level alone, and grows as the level moves away from the paper: work
        # it out for the 256 levels, not for every pixel. The darkest (inverted) or brightest pixel has the most
        # ink, and the strokes are the pixels beyond one level.
        level_ink = _ink(LEVELS, paper, inverted)
        peak = float(level_ink[gray.min() if inverted else gray.max()])
        _check_contrast(peak, index)
        stroke_levels = np.flatnonzero(level_ink >= INK_THRESHOLD * peak)
        strokes = gray <= int(stroke_levels[-1]) if inverted else gray >= int(stroke_levels[0])
        rows, cols = _bounding_box(strokes)
        crop = (level_ink * (255.0 / peak)).take(gray[rows, cols])
    else:
        ink = _ink(gray, paper, inverted)
        peak = float(ink.max())
        _check_contrast(peak, index)
        rows, cols = _bounding_box(ink >= INK_THRESHOLD * peak)
        crop = ink[rows, cols] * (255.0 / peak)
    if stages is not None:
        stages.record("cropped", crop)
    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Pillow's frombuffer and tobytes move the same float32 values as fromarray and asarray, with less overhead.
    scaled = Image.frombuffer("F", (width, height), crop, "raw", "F", 0, 1).resize(size, Image.Resampling.LANCZOS)
    digit = np.maximum(np.frombuffer(scaled.tobytes(), np.float32).reshape(size[1], size[0]), 0.0)
    np.minimum(digit, 255.0, out=digit)  # Lanczos overshoots on both sides of a stroke
    field, mass, cx, cy = _centre_by_mass(digit)
    if stages is not None:
        stages.record("scaled", digit)
        stages.record("centred", field)
    if measured is not None:
        measured.append(
            InputStats(
                ink=mass / (255.0 * FIELD * FIELD),
                box_fill=max(height, width) / max(gray.shape),
                box_aspect=width / height,
                mass_offset_x=cx - (size[0] - 1) / 2,
                mass_offset_y=cy - (size[1] - 1) / 2,
                inverted=float(inverted),
                path="image" if gray.dtype == np.uint8 else "pixels",
            )
        )
    return field


def _ink(gray: np.ndarray, paper: float, inverted: bool) -> np.ndarray:
    """How far each float32 value stands above the paper, once the ink is made bright."""
    if inverted:
        gray, paper = 255.0 - gray, 255.0 - paper
    ink: np.ndarray = np.maximum(gray - paper, 0.0)
    return ink


def _check_contrast(peak: float, index: int) -> None:
    if peak < MIN_CONTRAST:
        raise ApiError(ErrorCode.image_empty, "no ink found: the image is blank or has no contrast", index=index)


def _bounding_box(strokes: np.ndarray) -> tuple[slice, slice]:
    rows = np.flatnonzero(strokes.any(axis=1))
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(strokes[top:bottom].any(axis=0))
    return slice(top, bottom), slice(int(cols[0]), int(cols[-1]) + 1)


def _median(values: np.ndarray) -> float:
    """np.median without its generality: a tenth of the time on the few hundred values of a border."""
    middle = len(values) // 2
    if len(values) % 2:
        return float(np.partition(values, middle)[middle])
    low, high = np.partition(values, (middle - 1, middle))[middle - 1 : middle + 1]
    return (float(low) + float(high)) / 2


POSITIONS = np.arange(BOX, dtype=np.float32)  # a scaled digit is at most BOX pixels on either side


def _centre_by_mass(digit: np.ndarray) -> tuple[np.ndarray, float, float, float]:
    """The field with ``digit`` placed so its mass is at the centre; with the mass and its centre in ``digit``."""
    height, width = digit.shape
    row_mass, col_mass = digit.sum(axis=1), digit.sum(axis=0)
    mass = float(row_mass.sum())
    cy = float(row_mass @ POSITIONS[:height]) / mass
    cx = float(col_mass @ POSITIONS[:width]) / mass
    top = round(FIELD / 2 - 0.5 - cy)
    left = round(FIELD / 2 - 0.5 - cx)
    # Keep the whole box inside the field even when the mass sits far off its centre.
    top = min(max(top, 0), FIELD - height)
    left = min(max(left, 0), FIELD - width)
    field = np.zeros((FIELD, FIELD), dtype=np.float32)
    field[top : top + height, left : left + width] = digit
    return field, mass, cx, cy
