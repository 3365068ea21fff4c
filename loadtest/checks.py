"""Is a predict response right? The check every load test request goes through.

A request fails when the status is not 200, the body is not a predict response, or a
predicted label differs from the known digit: so a failure count counts wrong answers too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson


def prediction_problem(
    status: int, body: bytes | None, expected_labels: Sequence[int], feature_layers: Sequence[str] = ()
) -> str | None:
    """Why this response is wrong, or ``None`` when it is right."""
    if status != 200:
        return f"HTTP {status}: {_error_code(body)}"
    try:
        parsed = orjson.loads(body or b"")
        if "outputs" in parsed:  # an Open Inference Protocol answer, its outputs in JSON
            return _labels_problem(_oip_labels(parsed["outputs"]), expected_labels)
        predictions = parsed["predictions"]
        labels = [int(item["label"]) for item in predictions]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, StopIteration):
        return "200 but not a predict response"
    problem = _labels_problem(labels, expected_labels)
    if problem is not None:
        return problem
    for item in predictions:
        missing = [name for name in feature_layers if name not in (item.get("features") or {})]
        if missing:
            return f"feature maps missing: {', '.join(missing)}"
    return None


def _oip_labels(outputs: list[dict[str, Any]]) -> list[int]:
    return [int(label) for label in next(output for output in outputs if output["name"] == "label")["data"]]


def _labels_problem(labels: Sequence[int], expected_labels: Sequence[int]) -> str | None:
    if len(labels) != len(expected_labels):
        return f"{len(labels)} predictions for {len(expected_labels)} inputs"
    wrong = sum(got != want for got, want in zip(labels, expected_labels, strict=True))
    if wrong:
        return f"wrong label for {wrong} of {len(expected_labels)} digits"
    return None


def _error_code(body: bytes | None) -> str:
    try:
        error = orjson.loads(body or b"")
        return str(error["code"] if "code" in error else error["error"]["code"])  # /v2 errors carry it at the top
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "no error body"
