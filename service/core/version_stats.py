"""What one model version did, counted twice: into Prometheus (labelled by version, for the dashboards), and into
plain totals that a process publishes and a rollout sums over every process and replica to gate its steps."""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import numpy as np
from pydantic import BaseModel

from service.core.metrics import LATENCY_BUCKETS, Metrics


class StatsTotals(BaseModel):
    """Counts since a process started (or, as a difference, over a window). Added up across processes."""

    requests: int = 0
    errors: int = 0
    latency_buckets: list[int] = [0] * (len(LATENCY_BUCKETS) + 1)  # the last: beyond the widest bucket
    predictions: int = 0
    confidence_sum: float = 0.0
    shadow_compared: int = 0
    shadow_agreed: int = 0
    shadow_shift_sum: float = 0.0  # candidate's top-1 probability minus stable's, summed

    def __add__(self, other: StatsTotals) -> StatsTotals:
        return self._combine(other, 1)

    def __sub__(self, other: StatsTotals) -> StatsTotals:
        return self._combine(other, -1)

    def _combine(self, other: StatsTotals, sign: int) -> StatsTotals:
        return StatsTotals(
            requests=self.requests + sign * other.requests,
            errors=self.errors + sign * other.errors,
            latency_buckets=[a + sign * b for a, b in zip(self.latency_buckets, other.latency_buckets, strict=True)],
            predictions=self.predictions + sign * other.predictions,
            confidence_sum=self.confidence_sum + sign * other.confidence_sum,
            shadow_compared=self.shadow_compared + sign * other.shadow_compared,
            shadow_agreed=self.shadow_agreed + sign * other.shadow_agreed,
            shadow_shift_sum=self.shadow_shift_sum + sign * other.shadow_shift_sum,
        )

    @property
    def error_rate(self) -> float:
        answered = self.requests + self.errors
        return self.errors / answered if answered else 0.0

    @property
    def mean_confidence(self) -> float | None:
        return self.confidence_sum / self.predictions if self.predictions else None

    @property
    def agreement(self) -> float | None:
        return self.shadow_agreed / self.shadow_compared if self.shadow_compared else None

    @property
    def mean_shadow_shift(self) -> float | None:
        return self.shadow_shift_sum / self.shadow_compared if self.shadow_compared else None

    def latency_quantile(self, q: float) -> float | None:
        """The upper edge of the bucket holding quantile ``q`` (the histogram's resolution); None when empty."""
        total = sum(self.latency_buckets)
        if not total:
            return None
        rank, seen = q * total, 0
        for edge, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency_buckets, strict=True):
            seen += count
            if seen >= rank:
                return edge
        return float("inf")


def sum_totals(parts: Iterable[StatsTotals]) -> StatsTotals:
    total = StatsTotals()
    for part in parts:
        total = total + part
    return total


class VersionStats:
    """The counters of one served version in this process."""

    def __init__(self, version: str, metrics: Metrics) -> None:
        self.version = version
        self.totals = StatsTotals()
        self._ok = metrics.version_requests.labels(version=version, outcome="ok")
        self._errors = metrics.version_requests.labels(version=version, outcome="error")
        self._duration = metrics.version_duration.labels(version=version)
        self._confidence = metrics.version_confidence.labels(version=version)
        self._labels = [metrics.predictions.labels(label=str(label), version=version) for label in range(10)]
        self._agree = metrics.shadow_comparisons.labels(version=version, result="agree")
        self._disagree = metrics.shadow_comparisons.labels(version=version, result="disagree")
        self._shift = metrics.shadow_confidence_shift.labels(version=version)

    def answered(self, seconds: float, probabilities: np.ndarray) -> None:
        """A request answered in ``seconds`` with these ``[n, 10]`` probabilities."""
        totals = self.totals
        totals.requests += 1
        totals.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._ok.inc()
        self._duration.observe(seconds)
        top = probabilities.max(axis=1)
        totals.predictions += len(top)
        totals.confidence_sum += float(top.sum())
        for label, confidence in zip(probabilities.argmax(axis=1).tolist(), top.tolist(), strict=True):
            self._labels[label].inc()
            self._confidence.observe(confidence)

    def failed(self) -> None:
        """A request the model could not answer (a 5xx: overloaded, stopping, its backend failed)."""
        self.totals.errors += 1
        self._errors.inc()

    def shadowed(self, stable: np.ndarray, candidate: np.ndarray) -> None:
        """This version's shadow answers (``candidate`` probabilities) beside the stable version's for the same
        images."""
        agreed = int((stable.argmax(axis=1) == candidate.argmax(axis=1)).sum())
        shifts = candidate.max(axis=1) - stable.max(axis=1)
        totals = self.totals
        totals.shadow_compared += len(shifts)
        totals.shadow_agreed += agreed
        totals.shadow_shift_sum += float(shifts.sum())
        self._agree.inc(agreed)
        self._disagree.inc(len(shifts) - agreed)
        for shift in shifts.tolist():
            self._shift.observe(shift)
