"""A short history of the gateway's own Prometheus metrics, for the built-in dashboard.

``/metrics`` stays the source of truth: every few seconds :class:`MetricsHistory` reads the
same registry that ``/metrics`` renders and turns the change since the previous reading into
one point (request rate, latency quantiles, mean batch size, queue depth, where the time goes, each version's
drift and traffic, and each API key's traffic and refusals), the way Prometheus would with ``rate()`` and
``histogram_quantile()`` over that interval.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from service.core.api_keys import ApiKeys
from service.core.quotas import Quotas
from service.core.settings import MonitoringSettings, TelemetrySettings
from service.core.telemetry.stages import STAGES
from service.ui.drift_history import VersionDrift, drift_settings, read_drift
from service.ui.quantiles import Buckets, histogram_quantile
from service.ui.quota_history import KeyCounts, KeyRates, quota_settings
from service.ui.version_history import (
    ServingStateReader,
    VersionRates,
    VersionReadings,
    VersionWindow,
    rollout_status,
    version_windows,
)

QUANTILES = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Snapshot:
    """The registry's values that the dashboard needs, at one moment."""

    time: float
    requests: float
    errors: float
    latency: Buckets
    batches: float
    batched_images: float
    queue_depth: float
    inflight: float
    stages: tuple[tuple[str, float, float], ...]  # (stage, seconds, requests) on the route, in STAGES order
    drift: dict[str, VersionDrift]  # by model version
    keys: KeyCounts
    versions: VersionReadings

    @classmethod
    def read(cls, registry: CollectorRegistry, route: str, now: float) -> Snapshot:
        requests = errors = batches = batched_images = queue_depth = inflight = 0.0
        latency: dict[float, float] = {}
        stage_seconds = dict.fromkeys(STAGES, 0.0)
        stage_counts = dict.fromkeys(STAGES, 0.0)
        samples = [sample for family in registry.collect() for sample in family.samples]
        for sample in samples:
            labels = sample.labels
            if sample.name == "digits_http_requests_total" and labels.get("route") == route:
                requests += sample.value
                if int(labels.get("status", "0")) >= 400:
                    errors += sample.value
            elif sample.name == "digits_http_request_duration_seconds_bucket" and labels.get("route") == route:
                bound = float(labels["le"])
                latency[bound] = latency.get(bound, 0.0) + sample.value
            elif sample.name == "digits_batch_size_count":
                batches = sample.value
            elif sample.name == "digits_batch_size_sum":
                batched_images = sample.value
            elif sample.name == "digits_queue_depth":
                queue_depth = sample.value
            elif sample.name == "digits_inflight_requests":
                inflight = sample.value
            elif sample.name == "digits_stage_seconds_sum" and labels.get("route") == route:
                stage_seconds[labels["stage"]] += sample.value
            elif sample.name == "digits_stage_seconds_count" and labels.get("route") == route:
                stage_counts[labels["stage"]] += sample.value
        return cls(
            time=now,
            requests=requests,
            errors=errors,
            latency=tuple(sorted(latency.items())),
            batches=batches,
            batched_images=batched_images,
            queue_depth=queue_depth,
            inflight=inflight,
            stages=tuple((stage, stage_seconds[stage], stage_counts[stage]) for stage in STAGES),
            drift=read_drift(samples),
            keys=KeyCounts.read(samples),
            versions=VersionReadings.read(samples),
        )


@dataclass(frozen=True)
class Point:
    """What happened between two snapshots; rates per second, latencies in seconds, None for no data."""

    time: float
    request_rate: float
    error_rate: float
    latency_p50_seconds: float | None
    latency_p95_seconds: float | None
    latency_p99_seconds: float | None
    batch_size_mean: float | None
    batch_rate: float
    queue_depth: float
    inflight_requests: float
    # Where the time goes: the mean seconds a request spent in each stage, by stage (None: no request finished)
    stage_seconds: dict[str, float | None]
    drift: dict[str, VersionDrift]  # each version's latest drift reading
    keys: KeyRates  # per API key name: admitted requests and images, and 429s, per second
    versions: dict[str, VersionRates]  # by model version: its requests, errors, latency and shares

    @classmethod
    def between(cls, before: Snapshot, after: Snapshot) -> Point:
        seconds = max(after.time - before.time, 1e-9)
        previous = dict(before.latency)
        latency = tuple((bound, max(0.0, count - previous.get(bound, 0.0))) for bound, count in after.latency)
        p50, p95, p99 = (histogram_quantile(q, latency) for q in QUANTILES)
        batches = after.batches - before.batches
        earlier = {stage: (seconds, count) for stage, seconds, count in before.stages}
        stage_seconds: dict[str, float | None] = {}
        for stage, spent, count in after.stages:
            spent_before, count_before = earlier.get(stage, (0.0, 0.0))
            finished = count - count_before
            stage_seconds[stage] = (spent - spent_before) / finished if finished > 0 else None
        return cls(
            time=after.time,
            request_rate=(after.requests - before.requests) / seconds,
            error_rate=(after.errors - before.errors) / seconds,
            latency_p50_seconds=p50,
            latency_p95_seconds=p95,
            latency_p99_seconds=p99,
            batch_size_mean=(after.batched_images - before.batched_images) / batches if batches > 0 else None,
            batch_rate=batches / seconds,
            queue_depth=after.queue_depth,
            inflight_requests=after.inflight,
            stage_seconds=stage_seconds,
            drift=after.drift,
            keys=KeyRates.between(before.keys, after.keys, seconds),
            versions=VersionRates.between(before.versions, after.versions, seconds),
        )


class MetricsHistory:
    """Samples a registry at a fixed interval and keeps the last ``capacity`` points.

    ``monitoring``, ``keys`` and ``quotas`` say what the drift and quota panels can show: whether drift is scored
    and over how many images, and which keys there are with which quota (None: no keys file). ``serving_state``
    reads the versions' policy and rollout for the per-version rows (None: not shown).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        settings: TelemetrySettings,
        clock: Callable[[], float] = time.time,
        *,
        monitoring: MonitoringSettings | None = None,
        keys: ApiKeys | None = None,
        quotas: Quotas | None = None,
        serving_state: ServingStateReader | None = None,
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.clock = clock
        self.monitoring = monitoring or MonitoringSettings()
        self.keys = keys
        self.quotas = quotas
        self.serving_state = serving_state
        capacity = max(1, round(settings.dashboard_history_seconds / settings.dashboard_interval_seconds))
        self.points: deque[Point] = deque(maxlen=capacity)
        # The readings the points were made of, oldest first: the per-version windows span them.
        self.readings: deque[VersionReadings] = deque(maxlen=capacity + 1)
        self.last: Snapshot | None = None

    def sample(self) -> Point | None:
        """Read the registry now; returns the new point (None on the first reading)."""
        snapshot = Snapshot.read(self.registry, self.settings.dashboard_route, self.clock())
        point = Point.between(self.last, snapshot) if self.last is not None else None
        if point is not None:
            self.points.append(point)
        self.readings.append(snapshot.versions)
        self.last = snapshot
        return point

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(self.settings.dashboard_interval_seconds)

    def summary(self) -> dict[str, Any]:
        totals = self.last or Snapshot.read(self.registry, self.settings.dashboard_route, self.clock())
        return {
            "route": self.settings.dashboard_route,
            "interval_seconds": self.settings.dashboard_interval_seconds,
            "history_seconds": self.settings.dashboard_history_seconds,
            "totals": {"requests": totals.requests, "errors": totals.errors, "batches": totals.batches},
            "drift": drift_settings(self.monitoring),
            "quotas": quota_settings(self.keys, self.quotas),
            "versions": {name: asdict(window) for name, window in self.windows(totals).items()},
            "rollout": None if self.serving_state is None else rollout_status(self.serving_state(), totals.versions),
            "points": [asdict(point) for point in self.points],
        }

    def windows(self, latest: Snapshot) -> dict[str, VersionWindow]:
        """Each version over the history, from its oldest reading kept to ``latest``."""
        first = self.readings[0] if self.readings else latest.versions
        return version_windows(first, latest.versions)
