"""``explain`` on /v1/predict against a real gateway process: the field the model received, its saliency, the
preprocessing stages, and the served conv1 weights reproducing conv1's feature maps from that field."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from ops.local_servers import ServerProcess
from tests.explanations import (
    PIPELINE,
    SAMPLES,
    check_input_is_the_field,
    check_saliency,
    check_weights_reproduce_conv1,
    decoded,
    explain_samples,
)


def test_input_saliency_and_conv1_arithmetic(gateway: ServerProcess) -> None:
    explained = check_input_is_the_field(gateway.url)
    check_saliency(explained)
    check_weights_reproduce_conv1(gateway.url, explained)


def test_png_format(gateway: ServerProcess) -> None:
    for item in explain_samples(gateway.url, feature_format="png"):
        explain = item.prediction["explain"]
        assert explain["input"]["format"] == explain["saliency"]["format"] == "png"
        field = PIPELINE.field(item.sample.png, "auto", 0)
        np.testing.assert_array_equal(item.input, np.clip(field + 0.5, 0, 255).astype(np.uint8))
        saliency = item.saliency
        assert saliency.shape == (28, 28) and saliency.dtype == np.uint8
        assert saliency[field == 0].tolist() == [128] * int((field == 0).sum())  # no ink: no saliency


def test_preprocessing_stages(gateway: ServerProcess) -> None:
    sample = SAMPLES[-1]
    body = {"instances": [{"image": base64.b64encode(sample.png).decode()}], "explain": ["preprocessing", "input"]}
    prediction = httpx.post(f"{gateway.url}/v1/predict", json=body, timeout=30).json()["predictions"][0]
    stages = prediction["explain"]["preprocessing"]
    assert [stage["stage"] for stage in stages] == ["grayscale", "polarity", "cropped", "scaled", "centred"]
    assert "saliency" not in prediction["explain"]
    images = {stage["stage"]: decoded({"format": "png", **stage}) for stage in stages}
    assert stages[0]["shape"] == stages[1]["shape"] == [200, 200]
    assert images["grayscale"].shape == images["polarity"].shape == (112, 112)  # a 200 px scan, shrunk to 112
    assert max(stages[3]["shape"]) == 20 and stages[4]["shape"] == [28, 28]
    np.testing.assert_array_equal(images["centred"], decoded(prediction["explain"]["input"]).round().astype(np.uint8))
    # The scan is dark ink on white paper: polarity correction makes the paper black.
    assert images["grayscale"][0, 0] > 200 and images["polarity"][0, 0] < 50


def test_explanations_only_when_asked(gateway: ServerProcess) -> None:
    files = [("file", ("a.png", SAMPLES[0].png, "image/png"))]
    prediction = httpx.post(f"{gateway.url}/v1/predict", files=files, timeout=30).json()["predictions"][0]
    assert "explain" not in prediction
    answer = httpx.post(f"{gateway.url}/v1/predict", files=files, params={"explain": "saliency"}, timeout=30)
    assert set(answer.json()["predictions"][0]["explain"]) == {"saliency"}


def test_saliency_of_another_class(gateway: ServerProcess) -> None:
    files = [("file", ("a.png", SAMPLES[1].png, "image/png"))]
    maps = {}
    for label in (None, SAMPLES[1].label, 3):
        params = {"explain": "saliency,input"} | ({} if label is None else {"saliency_label": str(label)})
        prediction = httpx.post(f"{gateway.url}/v1/predict", files=files, params=params, timeout=30).json()
        saliency = prediction["predictions"][0]["explain"]["saliency"]
        assert saliency["label"] == (SAMPLES[1].label if label is None else label)
        maps[label] = decoded(saliency)
    np.testing.assert_array_equal(maps[None], maps[SAMPLES[1].label])  # the predicted class, asked by name
    assert not np.allclose(maps[3], maps[None])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"preprocess": "none", "explain": ["preprocessing"]}, "preprocess auto"),
        ({"explain": ["gradcam"]}, "explain.0"),
        ({"explain": "input"}, "explain"),
        ({"explain": ["input"], "saliency_label": 3}, "saliency_label"),
        ({"explain": ["saliency"], "saliency_label": 10}, "saliency_label"),
    ],
)
def test_bad_explain_is_a_422(gateway: ServerProcess, body: dict[str, object], message: str) -> None:
    pixels = np.zeros((28, 28), np.uint8)
    pixels[4:24, 13:16] = 255
    response = httpx.post(f"{gateway.url}/v1/predict", json={"instances": [{"pixels": pixels.tolist()}], **body})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and message in error["message"] and "index" not in error
