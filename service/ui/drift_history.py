"""The drift gauges of each served version, as the built-in dashboard charts them (service/core/drift.py sets them).

The gauges already hold the window's state, so a point carries the latest reading rather than a rate. A statistic
alerts as the Prometheus rules do (deploy/prometheus/rules/digits-alerts.yml), less their ``for:`` duration.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.samples import Sample

from service.core.settings import MonitoringSettings

ALERT_PSI = 0.25  # above it a shift is major: the drift alerts' threshold
ALERT_MIN_IMAGES = 200  # a smaller window is too small to judge
CONFIDENCE = "confidence"
ENABLE_HINT = "set DIGITS_DRIFT_MONITORING=true and restart the gateway (the model card needs a baseline)"


@dataclass(frozen=True)
class VersionDrift:
    """One version's drift reading; ``window_images`` 0 until its window is first scored."""

    window_images: float
    scores: dict[str, float]  # PSI by statistic
    confidence_window_mean: float | None
    confidence_baseline_mean: float | None
    # How much lower the window's mean top-1 confidence is than the baseline's (negative: higher)
    confidence_drop: float | None
    # The statistics whose score is above the alert threshold, once the window is large enough to judge
    alerts: tuple[str, ...]

    @classmethod
    def of(cls, images: float, scores: dict[str, float], window: float | None, baseline: float | None) -> VersionDrift:
        if not images:  # the gauges exist, at 0, from the monitor's start: no score yet
            return cls(0.0, {}, None, baseline, None, ())
        judged = images >= ALERT_MIN_IMAGES
        alerts = tuple(name for name, score in scores.items() if judged and score > ALERT_PSI)
        drop = None if window is None or baseline is None else baseline - window
        return cls(images, scores, window, baseline, drop, alerts)


def read_drift(samples: Iterable[Sample]) -> dict[str, VersionDrift]:
    """Each version's reading, by version: every version with a baseline, scored or not yet."""
    images: dict[str, float] = {}
    scores: dict[str, dict[str, float]] = {}
    window: dict[str, float] = {}
    baseline: dict[str, float] = {}
    for sample in samples:
        version = sample.labels.get("version", "")
        if sample.name == "digits_drift_window_images":
            images[version] = sample.value
        elif sample.name == "digits_drift_score":
            scores.setdefault(version, {})[sample.labels["statistic"]] = sample.value
        elif sample.name == "digits_drift_window_mean" and sample.labels.get("statistic") == CONFIDENCE:
            window[version] = sample.value
        elif sample.name == "digits_drift_baseline_mean" and sample.labels.get("statistic") == CONFIDENCE:
            baseline[version] = sample.value
    versions = sorted({*images, *scores, *window, *baseline})
    return {
        name: VersionDrift.of(images.get(name, 0.0), scores.get(name, {}), window.get(name), baseline.get(name))
        for name in versions
    }


def drift_settings(monitoring: MonitoringSettings) -> dict[str, Any]:
    """What the panel says about the scores: on or off, and over how many images."""
    return {
        "enabled": monitoring.drift_monitoring,
        "window_images": monitoring.drift_window_images,
        "refresh_seconds": monitoring.drift_refresh_seconds,
        "alert_psi": ALERT_PSI,
        "alert_min_images": ALERT_MIN_IMAGES,
        "how_to_enable": None if monitoring.drift_monitoring else ENABLE_HINT,
    }
