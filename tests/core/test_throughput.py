"""The batch-time model behind admission: overhead plus a cost per image, learnt from the batches that ran."""

from __future__ import annotations

import pytest

from service.core.throughput import Throughput


def test_small_batches_do_not_make_a_queue_look_slower_than_it_is() -> None:
    throughput = Throughput(max_batch_size=64)
    for n in [1, 2, 3, 1, 2, 4, 1, 2, 3, 2] * 3:
        throughput.record(n, 0.002 + 0.0003 * n)  # 2 ms of overhead, 0.3 ms an image
    assert throughput.batch_seconds(64) == pytest.approx(0.0212, rel=0.01)
    assert throughput.seconds_to_serve(30) == pytest.approx(0.002 + 0.0003 * 30, rel=0.01)  # one batch of 30
    assert throughput.seconds_to_serve(130) == pytest.approx(2 * 0.0212 + 0.002 + 0.0006, rel=0.01)
    assert throughput.images_per_second == pytest.approx(64 / 0.0212, rel=0.01)


def test_nothing_measured_yet_admits_everything() -> None:
    throughput = Throughput(max_batch_size=64, parallel_batches=2)
    assert throughput.seconds_to_serve(1000) == 0.0 and throughput.images_per_second is None
    throughput.record(64, 0.02)  # one size only: no overhead can be told apart
    assert throughput.seconds_to_serve(128) == pytest.approx(0.02)  # two batches side by side
