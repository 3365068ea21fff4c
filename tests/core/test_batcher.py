"""The batcher with the real embedded model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from service.backends.embedded import EmbeddedBackend
from service.core.backend import Backend
from service.core.batcher import Batcher
from service.core.errors import ApiError, ErrorCode
from service.core.metrics import Metrics
from service.core.types import BatchOutput

NONE: frozenset[str] = frozenset()


@pytest.fixture
async def backend(artifact: Path) -> AsyncIterator[EmbeddedBackend]:
    model = EmbeddedBackend(artifact, "cpu")
    await model.setup()
    yield model
    await model.close()


def images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 28, 28)).astype(np.float32)


def sample_count(metrics: Metrics, name: str) -> tuple[float, float]:
    count = metrics.registry.get_sample_value(f"{name}_count") or 0.0
    total = metrics.registry.get_sample_value(f"{name}_sum") or 0.0
    return count, total


async def test_concurrent_requests_share_model_calls(backend: EmbeddedBackend) -> None:
    metrics = Metrics()
    batcher = Batcher(backend, metrics, max_batch_size=32, max_wait_seconds=0.02, max_queue_images=64)
    batcher.start()
    inputs = [images(1, seed) for seed in range(20)]
    outputs = await asyncio.gather(*(batcher.submit(x, layers=NONE) for x in inputs))
    await batcher.stop()
    calls, batched_images = sample_count(metrics, "digits_batch_size")
    assert batched_images == 20
    assert calls < 5
    alone = [await backend.predict(x, layers=NONE) for x in inputs]
    for got, expected in zip(outputs, alone, strict=True):
        np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-5)


async def test_batches_never_exceed_the_maximum(backend: EmbeddedBackend) -> None:
    metrics = Metrics()
    batcher = Batcher(backend, metrics, max_batch_size=4, max_wait_seconds=0.01, max_queue_images=64)
    batcher.start()
    await asyncio.gather(*(batcher.submit(images(3, s), layers=NONE) for s in range(6)))
    await batcher.stop()
    assert metrics.registry.get_sample_value("digits_batch_size_bucket", {"le": "4.0"}) == 6


async def test_features_only_when_asked(backend: EmbeddedBackend) -> None:
    batcher = Batcher(backend, Metrics(), max_batch_size=8, max_wait_seconds=0.01, max_queue_images=16)
    batcher.start()
    plain, featured = await asyncio.gather(
        batcher.submit(images(1, 0), layers=NONE), batcher.submit(images(2, 1), layers=frozenset({"conv1"}))
    )
    await batcher.stop()
    assert list(featured.features) == ["conv1"] and featured.features["conv1"].shape[0] == 2
    assert len(plain) == 1


async def test_full_queue_answers_503_with_retry_after(backend: EmbeddedBackend) -> None:
    batcher = Batcher(
        backend, Metrics(), max_batch_size=4, max_wait_seconds=0.0, max_queue_images=4, retry_after_seconds=2
    )
    batcher.start()
    results = await asyncio.gather(*(batcher.submit(images(1, s), NONE) for s in range(10)), return_exceptions=True)
    await batcher.stop()
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(refused) == 6
    assert all(e.code == ErrorCode.queue_full and e.status == 503 and e.headers["Retry-After"] == "2" for e in refused)


async def test_stop_serves_everything_queued(backend: EmbeddedBackend) -> None:
    batcher = Batcher(backend, Metrics(), max_batch_size=2, max_wait_seconds=0.05, max_queue_images=64)
    batcher.start()
    pending = [asyncio.ensure_future(batcher.submit(images(1, s), NONE)) for s in range(15)]
    await asyncio.sleep(0)
    await batcher.stop()
    assert all(len(task.result()) == 1 for task in pending)
    with pytest.raises(ApiError) as excinfo:
        await batcher.submit(images(1, 0), NONE)
    assert excinfo.value.code == ErrorCode.not_ready


def test_bad_configuration_is_rejected(backend: EmbeddedBackend) -> None:
    with pytest.raises(ValueError, match="max_queue_images"):
        Batcher(backend, Metrics(), max_batch_size=64, max_wait_seconds=0.0, max_queue_images=8)


class SlowRemote(Backend):
    """A stand-in for a remote server with several workers: each call takes a while and runs concurrently."""

    name = "slow-remote"
    device = "remote"

    def __init__(self, max_batches_in_flight: int, seconds: float = 0.02) -> None:
        self.max_batches_in_flight = max_batches_in_flight
        self.seconds = seconds
        self.running = 0
        self.most_running = 0
        self.images_seen = 0

    async def setup(self) -> None: ...

    async def ready(self) -> bool:
        return True

    async def predict(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.images_seen += len(batch)
        await asyncio.sleep(self.seconds)
        self.running -= 1
        return BatchOutput(np.full((len(batch), 10), 0.1, dtype=np.float32), {})


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_batches_in_flight_follow_the_backend(in_flight: int) -> None:
    remote = SlowRemote(in_flight)
    batcher = Batcher(
        remote, Metrics(), max_batch_size=2, max_wait_seconds=0.0, max_queue_images=64, max_queue_wait_seconds=60
    )
    batcher.start()
    pending = [asyncio.ensure_future(batcher.submit(images(1, s), NONE)) for s in range(12)]
    await asyncio.sleep(0)
    await batcher.stop()  # also waits for the batches still in flight
    assert all(len(task.result()) == 1 for task in pending)
    assert remote.most_running == in_flight


async def test_a_request_that_would_wait_past_its_deadline_is_refused_at_once() -> None:
    remote = SlowRemote(1, seconds=0.05)  # 2 images per 50 ms: 40 images/s
    batcher = Batcher(
        remote, Metrics(), max_batch_size=2, max_wait_seconds=0.0, max_queue_images=64, max_queue_wait_seconds=0.2
    )
    batcher.start()
    await batcher.submit(images(2, 0), NONE)  # one full batch measures the rate
    assert batcher.throughput.images_per_second == pytest.approx(40, rel=0.3)
    queued = [asyncio.ensure_future(batcher.submit(images(1, s), NONE)) for s in range(12)]  # ~300 ms of work
    await asyncio.sleep(0)
    started = time.perf_counter()
    with pytest.raises(ApiError) as refused:
        await batcher.submit(images(1, 9), NONE)
    assert time.perf_counter() - started < 0.01  # at once, not after waiting
    assert refused.value.code == ErrorCode.queue_full and refused.value.headers["Retry-After"] == "1"
    await asyncio.gather(*queued, return_exceptions=True)
    await batcher.stop()


async def test_a_request_still_queued_at_its_deadline_is_answered_503_and_never_run() -> None:
    remote = SlowRemote(1, seconds=0.3)
    batcher = Batcher(
        remote, Metrics(), max_batch_size=1, max_wait_seconds=0.0, max_queue_images=64, max_queue_wait_seconds=0.1
    )
    batcher.start()
    first = asyncio.ensure_future(batcher.submit(images(1, 0), NONE))  # holds the model for 300 ms
    await asyncio.sleep(0.01)
    late = asyncio.ensure_future(batcher.submit(images(1, 1), NONE))  # admitted: nothing measured yet
    assert len(await first) == 1
    with pytest.raises(ApiError) as expired:
        await late
    assert expired.value.code == ErrorCode.queue_full and expired.value.status == 503
    assert remote.images_seen == 1  # the expired request never reached the model
    await batcher.stop()


async def request(batcher: Batcher, inputs: np.ndarray, *, reads: bool = True) -> BatchOutput:
    """One request as the inference object makes it: admitted, read and prepared (waiting once for its body when
    ``reads``, else finding it there), then submitted."""
    with batcher.arrival():
        if reads:
            await asyncio.sleep(0)
    return await batcher.submit(inputs, NONE)


def inline_calls(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("digits_inline_batches_total") or 0.0


def inline_batcher(backend: Backend, metrics: Metrics, max_batch_size: int = 32) -> Batcher:
    return Batcher(
        backend, metrics, max_batch_size=max_batch_size, max_wait_seconds=0.0, max_queue_images=64, inline_max_images=1
    )


async def test_a_request_on_an_idle_model_runs_inline(backend: EmbeddedBackend) -> None:
    metrics = Metrics()
    batcher = inline_batcher(backend, metrics)  # not started: only an inline request can be answered
    x = images(1, 0)
    output = await asyncio.wait_for(request(batcher, x), 5)
    expected = await backend.predict(x, NONE)
    np.testing.assert_allclose(output.probabilities, expected.probabilities, atol=1e-6)
    assert inline_calls(metrics) == 1
    assert sample_count(metrics, "digits_batch_size") == (1.0, 1.0)


async def test_background_tasks_do_not_turn_the_idle_path_off(backend: EmbeddedBackend) -> None:
    metrics = Metrics()
    batcher = inline_batcher(backend, metrics)
    batcher.start()
    sleepers = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(5)]  # e.g. a watcher, an exporter
    for seed in range(3):
        await request(batcher, images(1, seed))
    for task in sleepers:
        task.cancel()
    await batcher.stop()
    assert inline_calls(metrics) == 3


async def test_larger_requests_and_other_backends_are_handed_off(backend: EmbeddedBackend) -> None:
    metrics = Metrics()
    batcher = inline_batcher(backend, metrics, max_batch_size=8)
    batcher.start()
    await request(batcher, images(2, 0))
    await batcher.stop()
    remote_metrics = Metrics()
    remote = inline_batcher(SlowRemote(1), remote_metrics, max_batch_size=8)
    remote.start()
    await request(remote, images(1, 0))
    await remote.stop()
    assert inline_calls(metrics) == 0 and inline_calls(remote_metrics) == 0
    assert sample_count(metrics, "digits_batch_size") == (1.0, 2.0)


@pytest.mark.parametrize("reads", [True, False], ids=["bodies-read", "bodies-there"])
async def test_a_burst_at_an_idle_model_is_batched(backend: EmbeddedBackend, reads: bool) -> None:
    metrics = Metrics()
    batcher = inline_batcher(backend, metrics)
    batcher.start()
    await asyncio.gather(*(request(batcher, images(1, seed), reads=reads) for seed in range(20)))
    await batcher.stop()
    calls, batched_images = sample_count(metrics, "digits_batch_size")
    assert batched_images == 20
    assert calls < 6 and inline_calls(metrics) == 0


async def test_a_burst_right_after_an_inline_request_is_batched(backend: EmbeddedBackend) -> None:
    metrics = Metrics()
    batcher = inline_batcher(backend, metrics)
    batcher.start()
    await request(batcher, images(1, 99))
    await asyncio.gather(*(request(batcher, images(1, seed)) for seed in range(20)))
    await batcher.stop()
    calls, batched_images = sample_count(metrics, "digits_batch_size")
    assert batched_images == 21
    assert calls < 7 and inline_calls(metrics) == 1
