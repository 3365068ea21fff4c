"""The response check behind every load test request: right labels, or a reason why not."""

from __future__ import annotations

import orjson

from loadtest.checks import prediction_problem


def body(*labels: int, features: dict[str, object] | None = None) -> bytes:
    predictions = [
        {"label": label, "confidence": 0.9, **({"features": features} if features else {})} for label in labels
    ]
    return orjson.dumps({"model": {"name": "digits", "version": "1"}, "predictions": predictions})


def test_right_labels_pass() -> None:
    assert prediction_problem(200, body(7), [7]) is None
    assert prediction_problem(200, body(1, 2, 3), [1, 2, 3]) is None


def test_a_wrong_label_fails() -> None:
    assert prediction_problem(200, body(1), [7]) == "wrong label for 1 of 1 digits"
    assert prediction_problem(200, body(1, 2, 9), [1, 2, 3]) == "wrong label for 1 of 3 digits"


def test_a_missing_prediction_fails() -> None:
    assert prediction_problem(200, body(1), [1, 2]) == "1 predictions for 2 inputs"


def test_an_error_status_names_the_error_code() -> None:
    error = orjson.dumps({"error": {"code": "queue_full", "message": "busy"}})
    assert prediction_problem(503, error, [1]) == "HTTP 503: queue_full"
    assert prediction_problem(502, b"<html>", [1]) == "HTTP 502: no error body"


def test_a_200_that_is_not_a_predict_response_fails() -> None:
    assert prediction_problem(200, b'{"instances": []}', [1]) == "200 but not a predict response"
    assert prediction_problem(200, b"", [1]) == "200 but not a predict response"


def test_requested_feature_maps_must_be_there() -> None:
    assert prediction_problem(200, body(4, features={"conv1": {}}), [4], ["conv1"]) is None
    assert prediction_problem(200, body(4, features={"conv1": {}}), [4], ["conv1", "pool2"]) == (
        "feature maps missing: pool2"
    )


def test_open_inference_protocol_answers_are_checked_by_their_label_output() -> None:
    def answer(*labels: int) -> bytes:
        outputs = [{"name": "probabilities", "data": [0.1] * 10}, {"name": "label", "data": list(labels)}]
        return orjson.dumps({"model_name": "digits", "outputs": outputs})

    assert prediction_problem(200, answer(7, 2), [7, 2]) is None
    assert prediction_problem(200, answer(7, 3), [7, 2]) == "wrong label for 1 of 2 digits"
    assert prediction_problem(200, orjson.dumps({"outputs": []}), [7]) == "200 but not a predict response"
    error = orjson.dumps({"error": "invalid_tensor: unknown input 'x'", "code": "invalid_tensor"})
    assert prediction_problem(400, error, [7]) == "HTTP 400: invalid_tensor"
