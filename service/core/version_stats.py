"""What one model version did, counted twice: into Prometheus (labelled by version, for the dashboards), and into
plain totals that a process publishes and a rollout sums over every process and replica to gate its steps."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from pydantic import TypeAdapter

from service.core.metrics import LATENCY_BUCKETS, Metrics


@dataclass(slots=True)
class StatsTotals:
    """Counts since a process started (or, as a difference, over a window). Added up across processes.
    A plain dataclass: the request path adds to it (pydantic validates it where it is read from a file)."""

    requests: int = 0
    errors: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))  # last: beyond
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


TOTALS_ADAPTER: TypeAdapter[StatsTotals] = TypeAdapter(StatsTotals)  # validates totals read from a file


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
        tallies = metrics.tallies
        self._ok = tallies.counter(metrics.version_requests.labels(version=version, outcome="ok"))
        self._errors = metrics.version_requests.labels(version=version, outcome="error")
        self._duration = tallies.histogram(metrics.version_duration.labels(version=version))
        self._confidence = tallies.histogram(metrics.version_confidence.labels(version=version))
        self._labels = [
            tallies.counter(metrics.predictions.labels(label=str(label), version=version)) for label in range(10)
        ]
        self._agree = metrics.shadow_comparisons.labels(version=version, result="agree")
        self._disagree = metrics.shadow_comparisons.labels(version=version, result="disagree")
        self._stable_confidence = metrics.shadow_confidence.labels(version=version, side="stable")
        self._candidate_confidence = metrics.shadow_confidence.labels(version=version, side="candidate")

    def answered(self, seconds: float, labels: list[int], confidences: list[float]) -> None:
        """A request answered in ``seconds``, with each image's label and top-1 probability."""
        totals = self.totals
        totals.requests += 1
        totals.latency_buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        totals.predictions += len(labels)
        totals.confidence_sum += sum(confidences)
        self._ok.count += 1
        self._duration.observe(seconds)
        for label, confidence in zip(labels, confidences, strict=True):
            self._labels[label].count += 1
            self._confidence.observe(confidence)

    def failed(self) -> None:
        """A request the model could not answer (a 5xx: overloaded, stopping, its backend failed)."""
        self.totals.errors += 1
        self._errors.inc()

    def shadowed(self, stable: np.ndarray, candidate: np.ndarray) -> None:
        """This version's shadow answers (``candidate`` probabilities) beside the stable version's for the same
        images."""
        agreed = int((stable.argmax(axis=1) == candidate.argmax(axis=1)).sum())
        stable_top, candidate_top = stable.max(axis=1), candidate.max(axis=1)
        shifts = candidate_top - stable_top
        totals = self.totals
        totals.shadow_compared += len(shifts)
        totals.shadow_agreed += agreed
        totals.shadow_shift_sum += float(shifts.sum())
        self._agree.inc(agreed)
        self._disagree.inc(len(shifts) - agreed)
        for stable_confidence, candidate_confidence in zip(stable_top.tolist(), candidate_top.tolist(), strict=True):
            self._stable_confidence.observe(stable_confidence)
            self._candidate_confidence.observe(candidate_confidence)
