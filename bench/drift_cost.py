"""The hot-path cost of drift monitoring, per request of one image: ``python -m bench.drift_cost``.

Prints microseconds: the window's update (observe) and the statistics of a ``preprocess=none`` field (``auto``
preprocessing computes them anyway, as by-products).
"""

from __future__ import annotations

import os
import timeit

import numpy as np

from model.card import load_card
from model.settings import DEFAULT_ARTIFACT
from service.core.drift import DriftMonitor
from service.core.metrics import Metrics
from service.core.preprocessing import InputStats, to_mnist_field

CALLS = 20_000


def microseconds(work: object) -> float:
    return min(timeit.repeat(work, number=CALLS, repeat=5)) / CALLS * 1e6  # type: ignore[arg-type]


def main() -> None:
    card = load_card(DEFAULT_ARTIFACT)
    assert card.baseline is not None
    monitor = DriftMonitor(card.baseline, card.version, Metrics(), window=1000, refresh_seconds=5)
    field = np.zeros((28, 28), np.float32)
    field[5:20, 10:15] = 200
    measured: list[InputStats] = []
    to_mnist_field(field, "none", 0, None, measured)
    observed = microseconds(lambda: monitor.observe(measured, [3], [0.9]))
    print(f"observe, one image (its share of moving a window's worth into the ring included): {observed:.1f} us")
    plain = microseconds(lambda: to_mnist_field(field, "none", 0))
    counted = microseconds(lambda: to_mnist_field(field, "none", 0, None, []))
    print(f"preprocess=none field: {plain:.1f} us plain, {counted:.1f} us with its statistics")
    started = timeit.default_timer()
    for _ in range(20):
        monitor.refresh()
    print(f"scoring a full window (every 5 s): {(timeit.default_timer() - started) / 20 * 1e3:.2f} ms")
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
