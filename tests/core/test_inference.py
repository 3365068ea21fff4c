"""The inference object with the real embedded model: admission, reading, preparing, batching and counting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from model.card import load_card
from model.mnist import Split
from service.backends.embedded import EmbeddedBackend
from service.core.batcher import Batcher
from service.core.errors import ApiError, ErrorCode
from service.core.inference import Inference, PredictCall
from service.core.metrics import Metrics
from service.core.schemas import PredictOptions
from service.core.types import Limits

LIMITS = Limits(max_images=8, max_pixels=1_000_000)


def build(artifact: Path, metrics: Metrics, max_queue_images: int = 64) -> Inference:
    backend = EmbeddedBackend(artifact, "cpu")
    batcher = Batcher(backend, metrics, max_batch_size=8, max_wait_seconds=0.0, max_queue_images=max_queue_images)
    return Inference(artifact, load_card(artifact), backend, batcher, metrics, LIMITS)


@pytest.fixture
async def inference(artifact: Path) -> AsyncIterator[Inference]:
    served = build(artifact, Metrics())
    await served.start(wait=True)
    yield served
    await served.stop()


def call_of(digits: Split, **options: object) -> PredictCall:
    return PredictCall(PredictOptions.model_validate({"preprocess": "none", **options}), list(digits.images))


async def test_labels_digits_and_counts_the_predictions(inference: Inference, labelled_digits: Split) -> None:
    digits = Split(labelled_digits.images[:8], labelled_digits.labels[:8])
    readers: list[Inference] = []

    async def read(reader: Inference) -> PredictCall:
        readers.append(reader)
        return call_of(digits, features=["conv1"])

    outcome = await inference.run(read)
    assert readers == [inference] and inference.limits == LIMITS and outcome.inference is inference
    assert outcome.output.probabilities.argmax(axis=1).tolist() == digits.labels.tolist()
    assert outcome.layers == ["conv1"] and outcome.output.features["conv1"].shape[0] == 8
    assert [item["label"] for item in outcome.predictions()] == digits.labels.tolist()
    registry, version = inference.metrics.registry, inference.card.version
    counted = {
        label: registry.get_sample_value("digits_predictions_total", {"label": str(label), "version": version})
        for label in range(10)
    }
    assert sum(value or 0 for value in counted.values()) == 8
    assert counted[int(digits.labels[0])] == float(np.count_nonzero(digits.labels == digits.labels[0]))


async def test_an_explanation_keeps_each_inputs_field(inference: Inference, labelled_digits: Split) -> None:
    digits = Split(labelled_digits.images[:2], labelled_digits.labels[:2])

    async def read(_: Inference) -> PredictCall:
        return call_of(digits, explain=["input"])

    outcome = await inference.run(read)
    assert outcome.traces is not None and len(outcome.traces) == 2
    np.testing.assert_array_equal(outcome.traces[0].field, digits.images[0].astype(np.float32))
    assert all("explain" in item for item in outcome.predictions())


async def test_refused_while_loading_and_before_reading_when_full(artifact: Path, labelled_digits: Split) -> None:
    served = build(artifact, Metrics(), max_queue_images=8)
    reads = 0

    async def read(_: Inference) -> PredictCall:
        nonlocal reads
        reads += 1
        return call_of(Split(labelled_digits.images[:1], labelled_digits.labels[:1]))

    with pytest.raises(ApiError) as loading:
        await served.run(read)
    assert loading.value.code == ErrorCode.not_ready
    await served.start(wait=True)
    await served.stop()  # a stopped batcher admits nothing more
    with pytest.raises(ApiError) as closing:
        await served.run(read)
    assert closing.value.code == ErrorCode.not_ready and reads == 0


async def test_a_failed_read_leaves_nothing_in_flight(inference: Inference) -> None:
    async def read(_: Inference) -> PredictCall:
        raise ApiError(ErrorCode.empty_body, "the request body is empty")

    with pytest.raises(ApiError):
        await inference.run(read)
    await asyncio.sleep(0)
    assert inference.batcher.in_flight == 0
