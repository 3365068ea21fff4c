"""Turn a batch output into the public predictions: label, confidence, probabilities, top-k, feature maps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from service.core.features import FeatureFormat, encode_feature_map
from service.core.types import BatchOutput


def top_predictions(probabilities: np.ndarray) -> tuple[list[int], list[float]]:
    """Each image's label and its probability (``[n, 10]`` probabilities), as Python numbers: what the version's
    statistics and the drift monitor count."""
    rows = probabilities.tolist()  # plain Python on ten numbers: each numpy reduction costs more than all of this
    confidences = [max(row) for row in rows]
    return [row.index(top) for row, top in zip(rows, confidences, strict=True)], confidences


def predictions(
    output: BatchOutput, *, top_k: int, layers: Sequence[str], feature_format: FeatureFormat
) -> list[dict[str, Any]]:
    probabilities = output.probabilities
    ranked = np.argsort(-probabilities, axis=1, kind="stable")[:, :top_k]
    result = []
    for i, row in enumerate(probabilities):
        label = int(ranked[i, 0])
        # numpy float32 throughout, so a probability reads the same wherever it appears
        prediction: dict[str, Any] = {
            "label": label,
            "confidence": row[label],
            "probabilities": row,
            "top_k": [{"label": int(k), "probability": row[k]} for k in ranked[i]],
        }
        if layers:
            prediction["features"] = {
                name: encode_feature_map(output.features[name][i], feature_format) for name in layers
            }
        result.append(prediction)
    return result


def predict_body(model: dict[str, str], items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"model": model, "predictions": items}, option=orjson.OPT_SERIALIZE_NUMPY)
