"""What ``explain`` adds to a prediction: the field the model received, its saliency, the preprocessing stages."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from service.core.features import FeatureFormat, encode_array, png_base64, signed_gray
from service.core.preprocessing import StageRecorder

ExplainPart = Literal["input", "saliency", "preprocessing"]
# The names under which a backend is asked for saliency (service.core.saliency) and returns it, beside the layers:
# "saliency" for each image's predicted class, "saliency.3" for class 3.
SALIENCY = "saliency"
SALIENCY_METHOD = "gradient x input, black baseline, on the class's logit"
# Preprocessing stages of a large photo are shrunk to this many pixels on their longer side.
STAGE_MAX_SIDE = 112


def saliency_output(label: int | None) -> str:
    """The backend output with the saliency of class ``label``, or of the predicted class (None)."""
    return SALIENCY if label is None else f"{SALIENCY}.{label}"


def saliency_outputs(classes: int) -> dict[str, int | None]:
    """Every saliency output of a model with ``classes`` classes, and the class each explains (None: predicted)."""
    return {saliency_output(label): label for label in (None, *range(classes))}


@dataclass(frozen=True)
class FieldTrace:
    """One input's 28x28 MNIST field (0-255, ink bright, before normalization) and, when asked, its stages."""

    field: np.ndarray
    stages: StageRecorder | None


def explanation(
    parts: Collection[ExplainPart], trace: FieldTrace, saliency: np.ndarray | None, label: int, fmt: FeatureFormat
) -> dict[str, Any]:
    """The ``explain`` object of one prediction; ``saliency`` is given when ``parts`` asks for it."""
    result: dict[str, Any] = {}
    if "input" in parts:
        result["input"] = _input(trace.field, fmt)
    if saliency is not None:
        result["saliency"] = {**_saliency(saliency, fmt), "label": label, "method": SALIENCY_METHOD}
    if trace.stages is not None:
        result["preprocessing"] = [
            {"stage": stage, "shape": list(image.shape), "data": png_base64(_small(image))}
            for stage, image in trace.stages.images
        ]
    return result


def _input(field: np.ndarray, fmt: FeatureFormat) -> dict[str, Any]:
    if fmt == "array":
        return encode_array(field)
    return {"format": "png", "shape": list(field.shape), "data": png_base64(_gray(field))}


def _saliency(saliency: np.ndarray, fmt: FeatureFormat) -> dict[str, Any]:
    if fmt == "array":
        return encode_array(saliency)
    return {"format": "png", "shape": list(saliency.shape), "data": png_base64(signed_gray(saliency))}


def _gray(values: np.ndarray) -> np.ndarray:
    """Gray values 0-255 as they are, rounded to uint8."""
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)


def _small(image: np.ndarray) -> np.ndarray:
    gray = _gray(image)
    if max(gray.shape) <= STAGE_MAX_SIDE:
        return gray
    scale = STAGE_MAX_SIDE / max(gray.shape)
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    return np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))
