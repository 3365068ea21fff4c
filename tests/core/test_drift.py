"""Drift monitoring both ways: MNIST test digits stay under the alert threshold, shifted streams go above it on the
statistic the shift moves. The digits go through the real inference object, preprocessing and model."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from model.card import load_card
from model.mnist import load_test_split
from service.backends.embedded import EmbeddedBackend
from service.core.batcher import Batcher
from service.core.drift import DriftMonitor
from service.core.inference import Inference, PredictCall
from service.core.metrics import Metrics
from service.core.schemas import PredictOptions
from service.core.types import Limits

ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "digits-alerts.yml"
WINDOW = 1000
PER_REQUEST = 50


def alert_threshold(alert: str) -> float:
    """The PSI above which ``alert`` fires, read off its rule."""
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                match = re.search(r"digits_drift_score\{[^}]*\}\)?\s*>\s*([0-9.]+)", rule["expr"])
                assert match, rule["expr"]
                return float(match.group(1))
    raise AssertionError(f"no {alert} rule")


@pytest.fixture(scope="module")
def digits(data_dir: Path) -> np.ndarray:
    return load_test_split(data_dir).images[:WINDOW]


@pytest.fixture
async def inference(artifact: Path) -> AsyncIterator[Inference]:
    metrics, card = Metrics(), load_card(artifact)
    assert card.baseline is not None, "the shipped card carries no baseline: run digits baseline"
    backend = EmbeddedBackend(artifact, "cpu")
    batcher = Batcher(backend, metrics, max_batch_size=64, max_wait_seconds=0.0, max_queue_images=256)
    served = Inference(artifact, card, backend, batcher, metrics, Limits(max_images=64, max_pixels=1_000_000))
    served.drift = DriftMonitor(card.baseline, card.version, metrics, window=WINDOW, refresh_seconds=3600)
    await served.start(wait=True)
    yield served
    await served.stop()


async def stream(inference: Inference, images: list[np.ndarray]) -> dict[str, float]:
    """Send ``images`` as gray values with preprocess=auto, as a client would; the window's scores."""
    options = PredictOptions.model_validate({"preprocess": "auto"})
    for start in range(0, len(images), PER_REQUEST):
        chunk = [image.astype(np.float32) for image in images[start : start + PER_REQUEST]]

        async def read(_: Limits, chunk: list[np.ndarray] = chunk) -> PredictCall:
            return PredictCall(options, list(chunk))

        await inference.run(read)
    assert inference.drift is not None
    return {name: score.psi for name, score in inference.drift.refresh().items()}


def thick(digit: np.ndarray) -> np.ndarray:
    """Strokes twice as wide: each pixel the brightest of its 5x5 neighbourhood."""
    padded = np.pad(digit, 2)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (5, 5))
    return windows.max(axis=(2, 3))


def small_in_large_canvas(digit: np.ndarray) -> np.ndarray:
    canvas = np.zeros((112, 112), np.uint8)
    canvas[10:38, 60:88] = digit
    return canvas


def rotated(digit: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(digit).rotate(90))


def inverted(digit: np.ndarray) -> np.ndarray:
    return 255 - digit


async def test_mnist_test_digits_keep_every_score_under_its_threshold(inference: Inference, digits: np.ndarray) -> None:
    scores = await stream(inference, list(digits))
    threshold = alert_threshold("DigitsInputDrift")
    assert set(scores) == {*load_card(inference.artifact).baseline.statistics}  # type: ignore[union-attr]
    assert max(scores.values()) < threshold, scores


SHIFTS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], set[str]]] = {
    "thick strokes": (thick, {"ink"}),
    "small digits in a large canvas": (small_in_large_canvas, {"box_fill"}),
    "rotated digits": (rotated, {"box_aspect", "confidence"}),
    "inverted uploads": (inverted, {"inverted"}),
}


@pytest.mark.parametrize("shift", SHIFTS, ids=list(SHIFTS))
async def test_a_shifted_stream_raises_the_scores_of_what_it_shifts(
    inference: Inference, digits: np.ndarray, shift: str
) -> None:
    change, moved = SHIFTS[shift]
    scores = await stream(inference, [change(digit) for digit in digits])
    threshold = alert_threshold("DigitsInputDrift")
    above = {name for name, score in scores.items() if score > threshold}
    assert moved <= above, {name: round(score, 3) for name, score in scores.items()}


async def test_the_scores_are_exported_by_version_and_statistic(inference: Inference, digits: np.ndarray) -> None:
    await stream(inference, [inverted(digit) for digit in digits[:100]])
    registry = inference.metrics.registry
    labels = {"version": inference.card.version}
    assert registry.get_sample_value("digits_drift_window_images", labels) == 100
    assert registry.get_sample_value("digits_drift_score", labels | {"statistic": "inverted"}) > 1  # type: ignore[operator]
    assert registry.get_sample_value("digits_drift_window_mean", labels | {"statistic": "inverted"}) == 1.0
    assert registry.get_sample_value("digits_preprocess_paths_total", labels | {"path": "pixels"}) == 100


def test_a_worker_measures_its_requests_up_to_the_rate_then_a_sample(artifact: Path) -> None:
    card = load_card(artifact)
    assert card.baseline is not None
    monitor = DriftMonitor(card.baseline, card.version, Metrics(), window=WINDOW, refresh_seconds=3600,
                           requests_per_second=20)  # fmt: skip
    started = time.monotonic()
    burst = [monitor.measuring() for _ in range(200)]
    took = time.monotonic() - started
    assert burst[:20] == [True] * 20 and burst.count(True) <= 20 + 20 * took + 1  # a second's worth, then the rate
    started = time.monotonic()
    time.sleep(0.5)
    refilled = [monitor.measuring() for _ in range(200)].count(True)
    waited = time.monotonic() - started
    assert 9 <= refilled <= 20 * waited + 1  # half a second (or what the sleep took) refills ten
    unlimited = DriftMonitor(card.baseline, card.version, Metrics(), window=WINDOW, refresh_seconds=3600)
    assert all(unlimited.measuring() for _ in range(1000))
