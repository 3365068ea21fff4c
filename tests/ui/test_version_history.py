"""The dashboard's per-version rows and rollout status, read from a real gateway metrics registry."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest

from service.core.metrics import CONFIDENCE_BUCKETS, Metrics
from service.core.serving_state import Event, Refusal, Rollout, ServingState
from service.core.settings import TelemetrySettings
from service.core.traffic import TrafficPolicy
from service.core.version_stats import VersionStats
from service.ui.history import MetricsHistory

STABLE, CANDIDATE = "2.1.0", "2.2.0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def history_of(metrics: Metrics, clock: Clock, state: ServingState | None = None, **settings: float) -> MetricsHistory:
    reader = None if state is None else (lambda: state)
    return MetricsHistory(metrics.exported, TelemetrySettings(**settings), clock, serving_state=reader)  # type: ignore[arg-type]


def set_policy(metrics: Metrics, policy: TrafficPolicy) -> None:
    """The gauges as service/core/served_models.py sets them for a policy."""
    for version, share in policy.shares().items():
        role = "stable" if version == policy.stable else "candidate"
        metrics.traffic_share.labels(version=version, role=role).set(share)
    if policy.candidate:
        metrics.shadow_share.labels(version=policy.candidate).set(policy.shadow)


def test_each_version_gets_its_rates_latency_shares_and_shadow_agreement() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock)
    stable, candidate = VersionStats(STABLE, metrics), VersionStats(CANDIDATE, metrics)
    stable.answered(0.5, [1], [0.9])  # before the first reading: in no interval
    history.sample()

    set_policy(metrics, TrafficPolicy(stable=STABLE, candidate=CANDIDATE, weight=0.25, shadow=0.5))
    for _ in range(30):
        stable.answered(0.004, [7, 7, 1], [0.99, 0.97, 0.6])
    for _ in range(10):
        candidate.answered(0.040, [7], [0.75])
    candidate.failed()
    candidate.failed()
    probabilities = np.eye(10)[[1, 2, 3, 4]]
    candidate.shadowed(probabilities, np.eye(10)[[1, 2, 3, 5]])  # 3 of 4 agree
    clock.now += 2.0
    point = history.sample()

    assert point is not None
    rows = point.versions
    assert set(rows) == {STABLE, CANDIDATE}
    assert rows[STABLE].request_rate == pytest.approx(15.0) and rows[STABLE].error_rate == 0.0
    assert rows[CANDIDATE].request_rate == pytest.approx(5.0) and rows[CANDIDATE].error_rate == pytest.approx(1.0)
    assert 0.003 <= rows[STABLE].latency_p50_seconds <= 0.004  # type: ignore[operator]
    assert 0.03 <= rows[CANDIDATE].latency_p99_seconds <= 0.04  # type: ignore[operator]
    assert (rows[STABLE].traffic_share, rows[CANDIDATE].traffic_share) == (0.75, 0.25)
    assert rows[CANDIDATE].shadow_share == 0.5 and rows[STABLE].shadow_share == 0.0
    assert rows[CANDIDATE].shadow_agreement == pytest.approx(0.75) and rows[STABLE].shadow_agreement is None

    clock.now += 2.0
    idle = history.sample()
    assert idle is not None and idle.versions[STABLE].request_rate == 0.0
    assert idle.versions[STABLE].latency_p99_seconds is None and idle.versions[CANDIDATE].shadow_agreement is None


def test_the_window_has_each_versions_class_mix_and_confidence_distribution() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock)
    stable, candidate = VersionStats(STABLE, metrics), VersionStats(CANDIDATE, metrics)
    history.sample()
    for _ in range(20):
        stable.answered(0.004, [7, 7, 7, 1], [0.999, 0.96, 0.96, 0.6])
        candidate.answered(0.004, [2], [0.85])
    candidate.failed()
    candidate.shadowed(np.eye(10)[[1, 2]], np.eye(10)[[1, 2]])
    clock.now += 2.0
    history.sample()

    summary = orjson.loads(orjson.dumps(history.summary()))  # as the page receives it
    windows = summary["versions"]
    assert windows[STABLE]["class_mix"] == {"1": 0.25, "7": 0.75, **{str(n): 0.0 for n in range(10) if n not in (1, 7)}}
    assert windows[CANDIDATE]["class_mix"]["2"] == 1.0
    assert windows[STABLE]["predictions"] == 80 and windows[STABLE]["requests"] == 20
    assert windows[CANDIDATE]["requests"] == 21 and windows[CANDIDATE]["error_ratio"] == pytest.approx(1 / 21)
    confidence = {bucket["upper"]: bucket["share"] for bucket in windows[STABLE]["confidence"]}
    assert list(confidence) == list(CONFIDENCE_BUCKETS)  # every bucket, +Inf left out
    assert confidence[0.7] == pytest.approx(0.25)  # 0.6 is in (0.5, 0.7]
    assert confidence[0.98] == pytest.approx(0.5)  # 0.96 is in (0.95, 0.98]
    assert confidence[0.999] == pytest.approx(0.25)  # 0.999 is in (0.995, 0.999]: a bucket's bound is in it
    assert sum(confidence.values()) == pytest.approx(1.0)
    assert windows[CANDIDATE]["shadow_compared"] == 2 and windows[CANDIDATE]["shadow_agreement"] == 1.0
    assert summary["rollout"] is None  # no serving state given: no rollout block


def test_the_window_spans_the_history_kept() -> None:
    metrics, clock = Metrics(), Clock()
    history = history_of(metrics, clock, dashboard_interval_seconds=2.0, dashboard_history_seconds=6.0)
    stable = VersionStats(STABLE, metrics)
    for step in range(6):
        for _ in range(step):
            stable.answered(0.004, [step], [0.9])
        history.sample()
        clock.now += 2.0
    # Three points kept (6 s at 2 s): the requests of the last three intervals, those made at steps 3, 4 and 5.
    window = history.summary()["versions"][STABLE]
    assert window["requests"] == 3 + 4 + 5
    assert {label for label, share in window["class_mix"].items() if share} == {"3", "4", "5"}


def test_the_rollout_block_says_how_it_ended_and_nothing_secret() -> None:
    metrics, clock = Metrics(), Clock()
    rollout = Rollout(candidate=CANDIDATE, previous=STABLE, steps=["shadow", "5", "100"], step=1,
                      step_started_at=990.0, status="rolled_back", reason="p99 latency 31.0 ms > 1.5x stable's 10.0 ms",
                      ended_at=995.0)  # fmt: skip
    refusal = Refusal(version="9.9.9", code="hash_mismatch", message="/srv/secret/path/digits.pt", at=1.0)
    event = Event(at=1.0, kind="policy", message="by hand")
    state = ServingState(versions=[STABLE, CANDIDATE], policy=TrafficPolicy(stable=STABLE), rollout=rollout,
                         refusals={"9.9.9": refusal}, events=[event])  # fmt: skip
    metrics.rollouts.labels(result="rolled_back", reason="p99_latency").inc()
    history = history_of(metrics, clock, state)
    history.sample()

    block = history.summary()["rollout"]
    assert block["rollout"] == {
        "candidate": CANDIDATE,
        "stable": STABLE,
        "steps": ["shadow", "5", "100"],
        "step": 1,
        "status": "rolled_back",
        "reason": "p99 latency 31.0 ms > 1.5x stable's 10.0 ms",
        "step_started_at": 990.0,
        "ended_at": 995.0,
    }
    assert block["policy"] == {"stable": STABLE, "candidate": None, "weight": 0.0, "shadow": 0.0}
    assert block["versions"] == [STABLE, CANDIDATE]
    assert block["rollouts_ended"] == {"rolled_back": {"p99_latency": 1.0}}
    text = json.dumps(block)
    assert "secret" not in text and "by hand" not in text and "baselines" not in text
