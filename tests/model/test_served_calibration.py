"""Calibration as users get it: the MNIST test digits posted to a real gateway, ECE from its answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from model.calibration import calibration_metrics
from model.card import load_card
from model.mnist import load_test_split
from ops.local_servers import ServerProcess

DIGITS_PER_REQUEST = 64  # the gateway's default max_images_per_request
TARGET_ECE = 0.005


def served_probabilities(url: str, images: np.ndarray) -> np.ndarray:
    rows: list[list[float]] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for start in range(0, len(images), DIGITS_PER_REQUEST):
            chunk = images[start : start + DIGITS_PER_REQUEST]
            body = {"instances": [{"pixels": image.tolist()} for image in chunk], "preprocess": "none"}
            response = client.post("/v1/predict", json=body)
            assert response.status_code == 200, response.text
            rows += [prediction["probabilities"] for prediction in response.json()["predictions"]]
    return np.asarray(rows, dtype=np.float64)


@pytest.mark.timeout(600)
def test_served_probabilities_are_as_calibrated_as_the_card_says(
    gateway: ServerProcess, artifact: Path, data_dir: Path
) -> None:
    card = load_card(artifact)
    assert card.evaluation.calibration is not None
    split = load_test_split(data_dir)
    probabilities = served_probabilities(gateway.url, split.images)
    served = calibration_metrics(probabilities, split.labels)
    accuracy = float((probabilities.argmax(axis=1) == split.labels).mean())
    assert accuracy == card.evaluation.accuracy
    assert served.ece == pytest.approx(card.evaluation.calibration.ece, abs=1e-4)
    assert served.nll == pytest.approx(card.evaluation.calibration.nll, abs=1e-4)
    assert served.ece <= TARGET_ECE
