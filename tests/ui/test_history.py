"""The dashboard's metrics history, read from a real gateway metrics registry."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from service.core.api_keys import ApiKeys, key_hash, new_key
from service.core.metrics import LATENCY_BUCKETS, Metrics
from service.core.quotas import LocalBuckets, Quotas
from service.core.settings import MonitoringSettings, TelemetrySettings
from service.core.telemetry.stages import STAGES
from service.ui.drift_history import ALERT_MIN_IMAGES, ALERT_PSI, VersionDrift
from service.ui.history import MetricsHistory, histogram_quantile

ROUTE = "/v1/predict"
ALERT_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules" / "digits-alerts.yml"


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


def test_where_the_time_goes_is_the_mean_time_per_request_in_each_stage() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock)
    stage = metrics.stage_seconds.labels(version="1", route=ROUTE, stage="model")
    stage.observe(5.0)  # before the first reading: in no interval
    assert history.sample() is None
    for seconds in (0.002, 0.004):
        stage.observe(seconds)
        metrics.stage_seconds.labels(version="1", route=ROUTE, stage="queue").observe(seconds / 2)
    metrics.stage_seconds.labels(version="1", route="/metrics", stage="model").observe(1.0)  # another route
    clock.now += 2.0
    point = history.sample()
    assert point is not None
    assert list(point.stage_seconds) == list(STAGES)
    assert point.stage_seconds["model"] == pytest.approx(0.003)
    assert point.stage_seconds["queue"] == pytest.approx(0.0015)
    assert point.stage_seconds["read"] is None


def test_drift_says_no_data_until_the_window_is_scored_then_alerts_as_the_rules_do() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock)
    # What a drift monitor exports on its start: the baseline's means, and gauges at 0 until its first scoring.
    metrics.drift_baseline_mean.labels(version="2.0.0", statistic="confidence").set(0.98)
    metrics.drift_baseline_mean.labels(version="2.0.0", statistic="ink").set(0.2)
    metrics.drift_window_images.labels(version="2.0.0").set(0)
    metrics.drift_score.labels(version="2.0.0", statistic="ink").set(0)
    history.sample()
    clock.now += 2.0
    point = history.sample()
    assert point is not None
    (version,) = point.drift
    assert version == "2.0.0"
    assert point.drift[version].window_images == 0 and point.drift[version].scores == {}

    def scored(images: int, ink: float, confidence: float) -> VersionDrift:
        metrics.drift_window_images.labels(version="2.0.0").set(images)
        metrics.drift_score.labels(version="2.0.0", statistic="ink").set(ink)
        metrics.drift_score.labels(version="2.0.0", statistic="confidence").set(0.05)
        metrics.drift_window_mean.labels(version="2.0.0", statistic="confidence").set(confidence)
        clock.now += 2.0
        point = history.sample()
        assert point is not None
        return point.drift["2.0.0"]

    small = scored(ALERT_MIN_IMAGES - 1, ALERT_PSI * 2, 0.97)  # too few images to judge: no alert, as the rules
    assert small.scores == {"ink": ALERT_PSI * 2, "confidence": 0.05} and small.alerts == ()
    assert small.confidence_drop == pytest.approx(0.01)
    assert scored(ALERT_MIN_IMAGES, ALERT_PSI, 0.97).alerts == ()  # at the threshold: not above it
    drifting = scored(ALERT_MIN_IMAGES, ALERT_PSI + 0.01, 0.9)
    assert drifting.alerts == ("ink",) and drifting.confidence_drop == pytest.approx(0.08)
    assert json.loads(json.dumps(history.summary()))["points"][-1]["drift"]["2.0.0"]["alerts"] == ["ink"]


def test_the_drift_alert_threshold_is_the_alert_rules() -> None:
    rules = {rule["alert"]: rule["expr"] for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
             for rule in group["rules"] if "alert" in rule}  # fmt: skip
    for alert in ("DigitsInputDrift", "DigitsConfidenceDrop", "DigitsPredictedClassMixDrift"):
        assert re.search(rf"digits_drift_score\{{[^}}]*\}}\)\s*>\s*{ALERT_PSI}\b", rules[alert]), alert
        assert re.search(rf"digits_drift_window_images\)\s*>=\s*{ALERT_MIN_IMAGES}\b", rules[alert]), alert


def test_the_drift_panel_says_how_many_images_and_how_to_turn_it_on() -> None:
    metrics = Metrics()
    on = MetricsHistory(metrics.registry, TelemetrySettings(), monitoring=MonitoringSettings(drift_window_images=300))
    assert on.summary()["drift"] == {"enabled": True, "window_images": 300, "refresh_seconds": 5.0,
                                     "alert_psi": ALERT_PSI, "alert_min_images": ALERT_MIN_IMAGES,
                                     "how_to_enable": None}  # fmt: skip
    off = MetricsHistory(metrics.registry, TelemetrySettings(), monitoring=MonitoringSettings(drift_monitoring=False))
    assert "DIGITS_DRIFT_MONITORING=true" in off.summary()["drift"]["how_to_enable"]


def test_each_keys_requests_images_and_refusals_per_second() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock)
    metrics.key_requests.labels(key_name="ci").inc(100)  # before the first reading: in no interval
    history.sample()
    metrics.key_requests.labels(key_name="ci").inc(8)
    metrics.key_images.labels(key_name="ci").inc(40)
    metrics.quota_refusals.labels(key_name="ci", quota="requests").inc(6)
    metrics.key_requests.labels(key_name="batch").inc(2)  # a key first seen in this interval
    metrics.quota_refusals.labels(key_name="batch", quota="images").inc(1)
    clock.now += 2.0
    point = history.sample()
    assert point is not None
    assert point.keys.requests == {"ci": 4.0, "batch": 1.0}
    assert point.keys.admitted == {"ci": 1.0, "batch": 0.5}  # less the refusals, for requests or for images
    assert point.keys.images == {"ci": 20.0}
    assert point.keys.refusals == {"ci": {"requests": 3.0}, "batch": {"images": 0.5}}
    clock.now += 2.0
    idle = history.sample()
    assert idle is not None and idle.keys.requests == {"ci": 0.0, "batch": 0.0}


def test_the_quota_panel_lists_each_keys_quota_by_name_never_the_key(tmp_path: Path) -> None:
    metrics = Metrics()
    assert MetricsHistory(metrics.registry, TelemetrySettings()).summary()["quotas"] == {"keys_file": False, "keys": []}
    keys_file = tmp_path / "api-keys"
    (ci, ci_line), (_, free_line) = new_key("ci"), new_key("free")
    keys_file.write_text(f"{ci_line} rps=4\n{free_line} role=admin\n")
    keys = ApiKeys(keys_file)
    history = MetricsHistory(metrics.registry, TelemetrySettings(), keys=keys, quotas=Quotas(LocalBuckets(), metrics))
    summary = history.summary()
    assert summary["quotas"] == {"keys_file": True, "keys": [
        {"name": "ci", "requests_per_second": 4.0, "images_per_second": None},
        {"name": "free", "requests_per_second": None, "images_per_second": None},
    ]}  # fmt: skip
    text = json.dumps(summary)
    assert ci not in text and key_hash(ci) not in text
