"""The dashboard's metrics history, read from a real gateway metrics registry."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from pydantic import ValidationError

from service.core.metrics import LATENCY_BUCKETS, Metrics
from service.core.settings import TelemetrySettings
from service.ui.history import MetricsHistory, histogram_quantile

ROUTE = "/v1/predict"


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def history_of(metrics: Metrics, clock: Clock, **settings: float) -> MetricsHistory:
    return MetricsHistory(metrics.registry, TelemetrySettings(**settings), clock)  # type: ignore[arg-type]


def bucket_around(value: float) -> tuple[float, float]:
    bounds = (0.0, *LATENCY_BUCKETS)
    index = int(np.searchsorted(bounds, value))
    return bounds[index - 1], bounds[index]


def test_quantiles_rates_batches_and_queue_over_one_interval() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock)
    rng = np.random.default_rng(0)
    # Traffic before the first reading belongs to no interval.
    metrics.http_requests.labels(route=ROUTE, method="POST", status="200").inc(500)
    metrics.http_duration.labels(route=ROUTE, method="POST").observe(9.0)
    assert history.sample() is None

    latencies = rng.lognormal(np.log(0.004), 0.5, size=2000)
    for seconds in latencies:
        metrics.http_duration.labels(route=ROUTE, method="POST").observe(float(seconds))
    metrics.http_requests.labels(route=ROUTE, method="POST", status="200").inc(1990)
    metrics.http_requests.labels(route=ROUTE, method="POST", status="422").inc(10)
    metrics.http_requests.labels(route="/metrics", method="GET", status="200").inc(50)  # another route: not counted
    for size in (4, 8, 8, 12):
        metrics.batch_size.observe(size)
    metrics.queue_depth.set(7)
    clock.now += 4.0
    point = history.sample()

    assert point is not None
    assert point.request_rate == pytest.approx(2000 / 4.0)
    assert point.error_rate == pytest.approx(10 / 4.0)
    assert point.batch_size_mean == pytest.approx(8.0)
    assert point.batch_rate == pytest.approx(1.0)
    assert point.queue_depth == 7
    for q, value in ((0.5, point.latency_p50_seconds), (0.95, point.latency_p95_seconds),
                     (0.99, point.latency_p99_seconds)):  # fmt: skip
        low, high = bucket_around(float(np.quantile(latencies, q)))
        assert value is not None and low <= value <= high, (q, value, low, high)
    assert point.latency_p50_seconds < point.latency_p95_seconds < point.latency_p99_seconds  # type: ignore[operator]


def test_an_idle_interval_has_no_latency_and_zero_rate() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock)
    metrics.http_duration.labels(route=ROUTE, method="POST").observe(0.01)
    history.sample()
    clock.now += 2.0
    point = history.sample()
    assert point is not None
    assert point.request_rate == 0.0
    assert point.latency_p50_seconds is None and point.batch_size_mean is None


def test_history_keeps_the_last_minutes_only() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock, dashboard_interval_seconds=2.0, dashboard_history_seconds=10.0)
    for step in range(12):
        metrics.http_requests.labels(route=ROUTE, method="POST", status="200").inc(step)
        history.sample()
        clock.now += 2.0
    summary = history.summary()
    assert len(summary["points"]) == 5
    assert [round(p["request_rate"] * 2) for p in summary["points"]] == [7, 8, 9, 10, 11]
    assert summary["totals"]["requests"] == sum(range(12))
    assert summary["route"] == ROUTE and summary["interval_seconds"] == 2.0


def test_histogram_quantile_follows_prometheus() -> None:
    buckets = ((0.1, 10.0), (0.2, 30.0), (0.5, 40.0), (float("inf"), 40.0))
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1)  # rank 10: the top of the first bucket
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.15)  # rank 20: halfway through (0.1, 0.2]
    assert histogram_quantile(0.125, buckets) == pytest.approx(0.05)  # the first bucket starts at 0
    assert histogram_quantile(0.99, ((0.1, 1.0), (float("inf"), 100.0))) == 0.1  # in +Inf: the last finite bound
    assert histogram_quantile(0.5, ((0.1, 0.0), (float("inf"), 0.0))) is None


async def test_the_history_samples_on_its_own() -> None:
    metrics = Metrics()
    history = MetricsHistory(metrics.registry, TelemetrySettings(dashboard_interval_seconds=0.2))
    task = asyncio.create_task(history.run())
    try:
        for _ in range(50):
            await asyncio.sleep(0.1)
            if len(history.points) >= 2:
                break
    finally:
        task.cancel()
    assert len(history.points) >= 2


def test_bad_dashboard_settings_say_how_to_fix_them() -> None:
    with pytest.raises(ValidationError, match="DIGITS_DASHBOARD_HISTORY_SECONDS"):
        TelemetrySettings(dashboard_interval_seconds=10, dashboard_history_seconds=5)
    with pytest.raises(ValidationError):
        TelemetrySettings(dashboard_interval_seconds=0)
