"""Each served model version's traffic, as the built-in dashboard shows it in its per-version rows
(service/core/version_stats.py counts, service/core/served_models.py sets the shares), and the rollout's status.

A point carries each version's rates over its interval; the summary adds, over the whole history, each version's
class mix and confidence distribution, and the serving state's policy and rollout without anything secret.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.samples import Sample

from service.core.serving_state import ServingState
from service.ui.quantiles import Buckets, histogram_quantile

ServingStateReader = Callable[[], ServingState]


@dataclass(frozen=True)
class VersionCounts:
    """One version's counters at one moment: cumulative, as the registry holds them."""

    ok: float = 0.0
    errors: float = 0.0
    latency: Buckets = ()
    confidence: Buckets = ()
    labels: dict[str, float] = field(default_factory=dict)  # predictions by label
    agreed: float = 0.0  # shadowed images whose top label matched stable's
    disagreed: float = 0.0


@dataclass(frozen=True)
class VersionReadings:
    """Every version's counters, traffic share and shadow sampling at one moment, and the rollouts ended so far."""

    counts: dict[str, VersionCounts]
    shares: dict[str, float]  # share of unversioned requests, whatever the version's role
    shadow: dict[str, float]  # share of stable's requests copied to the version in shadow
    rollouts: dict[str, dict[str, float]]  # rollouts ended, by result then reason

    @classmethod
    def read(cls, samples: Iterable[Sample]) -> VersionReadings:
        fields: dict[str, dict[str, Any]] = {}
        latency: dict[str, dict[float, float]] = {}
        confidence: dict[str, dict[float, float]] = {}
        shares: dict[str, float] = {}
        shadow: dict[str, float] = {}
        rollouts: dict[str, dict[str, float]] = {}
        for sample in samples:
            name, labels = sample.name, sample.labels
            version = labels.get("version", "")
            if name == "digits_version_requests_total":
                key = "ok" if labels["outcome"] == "ok" else "errors"
                of = fields.setdefault(version, {})
                of[key] = of.get(key, 0.0) + sample.value
            elif name == "digits_version_request_duration_seconds_bucket":
                latency.setdefault(version, {})[float(labels["le"])] = sample.value
            elif name == "digits_version_confidence_bucket":
                confidence.setdefault(version, {})[float(labels["le"])] = sample.value
            elif name == "digits_predictions_total":
                fields.setdefault(version, {}).setdefault("labels", {})[labels["label"]] = sample.value
            elif name == "digits_shadow_comparisons_total":
                key = "agreed" if labels["result"] == "agree" else "disagreed"
                fields.setdefault(version, {})[key] = sample.value
            elif name == "digits_traffic_share":
                shares[version] = shares.get(version, 0.0) + sample.value  # one role holds it, the others 0
            elif name == "digits_shadow_sampling":
                shadow[version] = sample.value
            elif name == "digits_rollouts_total":
                rollouts.setdefault(labels["result"], {})[labels["reason"]] = sample.value
        versions = {*fields, *latency, *confidence}
        counts = {
            version: VersionCounts(
                latency=tuple(sorted(latency.get(version, {}).items())),
                confidence=tuple(sorted(confidence.get(version, {}).items())),
                **fields.get(version, {}),
            )
            for version in versions
        }
        return cls(counts, shares, shadow, rollouts)


@dataclass(frozen=True)
class VersionRates:
    """One version between two readings: rates per second, latencies in seconds, None for no data."""

    request_rate: float
    error_rate: float
    latency_p50_seconds: float | None
    latency_p99_seconds: float | None
    traffic_share: float
    shadow_share: float
    shadow_agreement: float | None  # of the images shadowed in the interval

    @classmethod
    def between(cls, before: VersionReadings, after: VersionReadings, seconds: float) -> dict[str, VersionRates]:
        rates = {}
        for version, now in sorted(after.counts.items()):
            change = _change(before.counts.get(version, VersionCounts()), now)
            compared = change.agreed + change.disagreed
            rates[version] = cls(
                request_rate=change.ok / seconds,
                error_rate=change.errors / seconds,
                latency_p50_seconds=histogram_quantile(0.5, change.latency),
                latency_p99_seconds=histogram_quantile(0.99, change.latency),
                traffic_share=after.shares.get(version, 0.0),
                shadow_share=after.shadow.get(version, 0.0),
                shadow_agreement=change.agreed / compared if compared else None,
            )
        return rates


@dataclass(frozen=True)
class VersionWindow:
    """One version over a longer stretch (the dashboard's history): its counts, the class mix and the confidence
    distribution of its predictions, and its shadow agreement."""

    requests: float
    errors: float
    error_ratio: float | None  # errors among the requests the model answered or failed
    latency_p50_seconds: float | None
    latency_p99_seconds: float | None
    predictions: float
    class_mix: dict[str, float]  # share of the predictions by label
    # Share of the predictions whose top-1 probability is in each bucket, by its upper bound (the lower: the last's)
    confidence: list[dict[str, float]]
    shadow_compared: float
    shadow_agreement: float | None

    @classmethod
    def between(cls, before: VersionCounts, after: VersionCounts) -> VersionWindow:
        change = _change(before, after)
        answered = change.ok + change.errors
        predictions = sum(change.labels.values())
        compared = change.agreed + change.disagreed
        shares, below = [], 0.0
        for upper, cumulative in change.confidence:
            if math.isinf(upper):  # a probability is at most 1: the +Inf bucket adds nothing
                continue
            shares.append({"upper": upper, "share": (cumulative - below) / predictions if predictions else 0.0})
            below = cumulative
        return cls(
            requests=answered,
            errors=change.errors,
            error_ratio=change.errors / answered if answered else None,
            latency_p50_seconds=histogram_quantile(0.5, change.latency),
            latency_p99_seconds=histogram_quantile(0.99, change.latency),
            predictions=predictions,
            class_mix={label: count / predictions for label, count in change.labels.items()} if predictions else {},
            confidence=shares,
            shadow_compared=compared,
            shadow_agreement=change.agreed / compared if compared else None,
        )


def _change(before: VersionCounts, after: VersionCounts) -> VersionCounts:
    """``after`` less ``before``; a series first seen after ``before`` started at 0."""

    def buckets(earlier: Buckets, later: Buckets) -> Buckets:
        previous = dict(earlier)
        return tuple((bound, max(0.0, count - previous.get(bound, 0.0))) for bound, count in later)

    return VersionCounts(
        ok=max(0.0, after.ok - before.ok),
        errors=max(0.0, after.errors - before.errors),
        latency=buckets(before.latency, after.latency),
        confidence=buckets(before.confidence, after.confidence),
        labels={label: max(0.0, count - before.labels.get(label, 0.0)) for label, count in after.labels.items()},
        agreed=max(0.0, after.agreed - before.agreed),
        disagreed=max(0.0, after.disagreed - before.disagreed),
    )


def version_windows(first: VersionReadings, last: VersionReadings) -> dict[str, VersionWindow]:
    return {
        version: VersionWindow.between(first.counts.get(version, VersionCounts()), counts)
        for version, counts in sorted(last.counts.items())
    }


def rollout_status(state: ServingState, readings: VersionReadings) -> dict[str, Any]:
    """The policy and the rollout for anyone who may read the dashboard: versions, shares, the plan and its step, how
    it ended and why; no events, refusal messages or figures that only the admin API gives."""
    rollout = state.rollout
    return {
        "versions": state.versions,
        "policy": state.policy.model_dump(mode="json"),
        "rollout": None
        if rollout is None
        else {
            "candidate": rollout.candidate,
            "stable": rollout.previous,
            "steps": rollout.steps,
            "step": rollout.step,
            "status": rollout.status,
            "reason": rollout.reason,
            "step_started_at": rollout.step_started_at,
            "ended_at": rollout.ended_at,
        },
        "rollouts_ended": readings.rollouts,
    }
