"""Is a predict response right? The check every load test request goes through.

A request fails when the status is not 200, the body is not a predict response, or a
predicted label differs from the known digit: so a failure count counts wrong answers too.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson


def prediction_problem(
    status: int, body: bytes | None, expected_labels: Sequence[int], feature_layers: Sequence[str] = ()
) -> str | None:
    """Why this response is wrong, or ``None`` when it is right."""
    if status != 200:
        return f"HTTP {status}: {_error_code(body)}"
    try:
        parsed = orjson.loads(body or b"")
        predictions = parsed["predictions"]
        labels = [int(item["label"]) for item in predictions]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "200 but not a predict response"
    if len(labels) != len(expected_labels):
        return f"{len(labels)} predictions for {len(expected_labels)} inputs"
    wrong = sum(got != want for got, want in zip(labels, expected_labels, strict=True))
    if wrong:
        return f"wrong label for {wrong} of {len(expected_labels)} digits"
    for item in predictions:
        missing = [name for name in feature_layers if name not in (item.get("features") or {})]
        if missing:
            return f"feature maps missing: {', '.join(missing)}"
    return None


def _error_code(body: bytes | None) -> str:
    try:
        return str(orjson.loads(body or b"")["error"]["code"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "no error body"
