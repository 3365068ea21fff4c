"""The automatic rollout of a candidate version: a plan of steps (shadow, then growing shares of traffic), each held
for a number of requests and a time, each gated by SLOs measured against the stable version over the step. A breach
rolls back to stable at once, with its reason recorded; a candidate that passes every step becomes stable, and the
previous version stays loaded for a grace period so that a manual rollback is instant.

One process runs the plan (the leader, see service/core/coordination.py); it reads the counts of every process and
replica (:class:`~service.core.version_stats.StatsTotals`) and writes its decisions into the shared state, which
every process converges to."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from service.core.errors import ApiError, ErrorCode
from service.core.metrics import Metrics
from service.core.served_models import ServedModels
from service.core.serving_state import Rollout, ServingState
from service.core.settings import RolloutSettings
from service.core.traffic import TrafficPolicy
from service.core.version_stats import StatsTotals

log = logging.getLogger(__name__)

SHADOW = "shadow"
ERROR_RATE_FLOOR = 0.001
Totals = Callable[[], dict[str, StatsTotals]]


def step_policy(rollout: Rollout, settings: RolloutSettings) -> TrafficPolicy:
    step = rollout.steps[rollout.step]
    if step == SHADOW:
        return TrafficPolicy(stable=rollout.previous, candidate=rollout.candidate, shadow=settings.shadow_sampling)
    return TrafficPolicy(stable=rollout.previous, candidate=rollout.candidate, weight=float(step) / 100)


def check_steps(steps: list[str]) -> list[str]:
    """``steps`` when each is ``shadow`` or a share in percent (0-100], growing, the last 100; else ApiError."""
    shares = [float(step) for step in steps if step != SHADOW and step.replace(".", "", 1).isdigit()]
    valid = (
        bool(steps)
        and len(shares) == len([s for s in steps if s != SHADOW])
        and all(0 < share <= 100 for share in shares)
        and shares == sorted(shares)
        and (not shares or shares[-1] == 100)
        and steps[-1] != SHADOW
    )
    if not valid:
        raise ApiError(ErrorCode.invalid_request, f"a rollout plan is 'shadow' and growing percentages up to 100, "
                       f"for example shadow,5,25,50,100; not {','.join(steps)}")  # fmt: skip
    return steps


@dataclass(frozen=True)
class Breach:
    gate: str  # agreement, confidence, error_rate, p99_latency, operator: the metric's label
    reason: str  # in words, with the figures


@dataclass(frozen=True)
class Verdict:
    breach: Breach | None
    complete: bool  # the step held long enough, and passed


def judge(rollout: Rollout, totals: dict[str, StatsTotals], settings: RolloutSettings, now: float) -> Verdict:
    """The current step's gates over the step so far."""
    window = {version: totals.get(version, StatsTotals()) - rollout.baselines.get(version, StatsTotals())
              for version in (rollout.candidate, rollout.previous)}  # fmt: skip
    candidate, stable = window[rollout.candidate], window[rollout.previous]
    minimum = settings.rollout_gate_min_samples
    held = now - rollout.step_started_at >= settings.rollout_step_min_seconds
    if rollout.steps[rollout.step] == SHADOW:
        if candidate.shadow_compared >= minimum:
            agreement, shift = candidate.agreement or 0.0, candidate.mean_shadow_shift or 0.0
            if agreement < settings.rollout_min_agreement:
                why = (f"agreement with stable {agreement:.1%} < {settings.rollout_min_agreement:.1%} over "
                       f"{candidate.shadow_compared} shadowed images")  # fmt: skip
                return Verdict(Breach("agreement", why), False)
            if -shift > settings.rollout_max_confidence_drop:
                why = (f"mean confidence {-shift:.3f} below stable's (at most "
                       f"{settings.rollout_max_confidence_drop:.3f}) in shadow")  # fmt: skip
                return Verdict(Breach("confidence", why), False)
        return Verdict(None, held and candidate.shadow_compared >= settings.rollout_step_min_requests)
    if candidate.requests + candidate.errors >= minimum:
        breach = _canary_breach(candidate, stable, settings)
        if breach is not None:
            return Verdict(breach, False)
    return Verdict(None, held and candidate.requests >= settings.rollout_step_min_requests)


def _canary_breach(candidate: StatsTotals, stable: StatsTotals, settings: RolloutSettings) -> Breach | None:
    allowed_errors = max(stable.error_rate, ERROR_RATE_FLOOR) * settings.rollout_max_error_ratio
    if candidate.error_rate > allowed_errors:
        why = f"error rate {candidate.error_rate:.2%} > {allowed_errors:.2%} (stable {stable.error_rate:.2%})"
        return Breach("error_rate", why)
    if stable.requests < settings.rollout_gate_min_samples:
        return None  # at a 100 % share stable answers nothing more: its own figures are compared from here on
    candidate_p99, stable_p99 = candidate.latency_quantile(0.99), stable.latency_quantile(0.99)
    if candidate_p99 and stable_p99 and candidate_p99 / stable_p99 > settings.rollout_max_p99_ratio:
        why = (f"p99 latency {candidate_p99 * 1000:.1f} ms > {settings.rollout_max_p99_ratio}x stable's "
               f"{stable_p99 * 1000:.1f} ms")  # fmt: skip
        return Breach("p99_latency", why)
    candidate_confidence, stable_confidence = candidate.mean_confidence, stable.mean_confidence
    if candidate_confidence is not None and stable_confidence is not None:
        drop = stable_confidence - candidate_confidence
        if drop > settings.rollout_max_confidence_drop:
            why = f"mean confidence {candidate_confidence:.3f}, {drop:.3f} below stable's {stable_confidence:.3f}"
            return Breach("confidence", why)
    return None


class RolloutController:
    """Starts, advances, promotes and rolls back rollouts in the shared state."""

    def __init__(self, models: ServedModels, totals: Totals, settings: RolloutSettings, metrics: Metrics) -> None:
        self.models = models
        self.totals = totals
        self.settings = settings
        self.metrics = metrics

    def state(self) -> ServingState:
        """The shared serving state: versions, policy, the rollout and its history."""
        return self.models.store.read() or self.models.initial_state()

    def report(self) -> dict[str, Any]:
        """The shared state and, for a running rollout, each version's figures over the step so far."""
        state = self.state()
        report: dict[str, Any] = state.model_dump(mode="json", exclude={"rollout": {"baselines"}})
        rollout = state.rollout
        if rollout is not None and rollout.status == "running":
            totals = self.totals()
            report["window"] = {
                version: _figures(totals.get(version, StatsTotals()) - rollout.baselines.get(version, StatsTotals()))
                for version in (rollout.previous, rollout.candidate)
            }
            report["gates"] = self.settings.model_dump(include=GATES)
        return report

    async def start(self, candidate: str, steps: list[str] | None = None) -> Rollout:
        plan = check_steps(steps or self.settings.rollout_steps)
        await self.models.load(candidate)
        with self._update() as state:
            if state.rollout is not None and state.rollout.status == "running":
                raise ApiError(ErrorCode.rollout_conflict, f"a rollout of {state.rollout.candidate} is running; "
                               "abort it first")  # fmt: skip
            if candidate == state.policy.stable:
                raise ApiError(ErrorCode.rollout_conflict, f"{candidate} is already the stable version")
            rollout = Rollout(candidate=candidate, previous=state.policy.stable, steps=plan,
                              step_started_at=time.time(), baselines=self.totals())  # fmt: skip
            state.rollout = rollout
            state.policy = step_policy(rollout, self.settings)
            state.record("rollout", f"rollout of {candidate} started: {','.join(plan)}")
        log.info("rollout of %s started over %s: %s", candidate, rollout.previous, ",".join(plan))
        self.metrics.rollout_step.labels(candidate=candidate).set(0)
        await self.models.converge(state)
        return rollout

    async def set_policy(self, policy: TrafficPolicy) -> None:
        """A traffic policy set by hand; refused while a rollout runs (it sets the policy itself)."""
        state = self.models.store.read()
        if state is not None and state.rollout is not None and state.rollout.status == "running":
            raise ApiError(ErrorCode.rollout_conflict, f"a rollout of {state.rollout.candidate} is running; abort it "
                           "before setting the traffic by hand")  # fmt: skip
        await self.models.set_policy(policy, f"traffic policy set by hand: {policy.model_dump(exclude_defaults=True)}")

    async def abort(self) -> Rollout:
        """Stop the running rollout and send all traffic to stable: an operator's decision, not a breach."""
        return await self._end("aborted", Breach("operator", "aborted by an operator"))

    async def rollback(self) -> Rollout:
        """Back to the previous stable version now: the running rollout's, or the last promoted one's while it is
        still loaded."""
        return await self._end("rolled_back", Breach("operator", "rolled back by an operator"))

    async def tick(self) -> None:
        """Judge the running step; advance, promote or roll back. Run by the leader only."""
        state = self.models.store.read()
        if state is None or state.rollout is None or state.rollout.status != "running":
            return
        totals, now = self.totals(), time.time()
        rollout = _rebased(state.rollout, totals)
        verdict = judge(rollout, totals, self.settings, now)
        if verdict.breach is not None:
            await self._end("rolled_back", verdict.breach)
        elif verdict.complete:
            await self._advance(totals, now)
        elif rollout is not state.rollout:
            with self._update() as fresh:
                if fresh.rollout is not None and fresh.rollout.status == "running":
                    fresh.rollout.baselines = rollout.baselines

    async def _advance(self, totals: dict[str, StatsTotals], now: float) -> None:
        with self._update() as state:
            rollout = state.rollout
            assert rollout is not None
            if rollout.step + 1 < len(rollout.steps):
                rollout.step += 1
                rollout.step_started_at, rollout.baselines = now, totals
                state.policy = step_policy(rollout, self.settings)
                state.record("rollout", f"{rollout.candidate}: step {rollout.step + 1} of {len(rollout.steps)} "
                             f"({rollout.steps[rollout.step]})")  # fmt: skip
                self.metrics.rollout_step.labels(candidate=rollout.candidate).set(rollout.step)
            else:
                rollout.status, rollout.ended_at, rollout.reason = "promoted", now, "every step passed"
                state.policy = TrafficPolicy(stable=rollout.candidate)
                state.retire_at[rollout.previous] = now + self.settings.rollout_keep_previous_seconds
                state.record("rollout", f"{rollout.candidate} promoted to stable over {rollout.previous}")
                self.metrics.rollout_step.labels(candidate=rollout.candidate).set(-1)
                self.metrics.rollouts.labels(result="promoted", reason="passed").inc()
                log.info("rollout: %s promoted to stable", rollout.candidate)
        await self.models.converge(state)

    async def _end(self, status: Literal["rolled_back", "aborted"], why: Breach) -> Rollout:
        with self._update() as state:
            rollout = state.rollout
            if rollout is None:
                raise ApiError(ErrorCode.rollout_conflict, "there is no rollout to end")
            if rollout.status == "running":
                back_to = rollout.previous
            elif status == "rolled_back" and rollout.status == "promoted" and rollout.previous in state.versions:
                back_to = rollout.previous
                state.retire_at.pop(back_to, None)
            elif status == "rolled_back" and rollout.status == "promoted":
                raise ApiError(ErrorCode.rollout_conflict, f"{rollout.candidate} was promoted and its previous "
                               f"version {rollout.previous} is no longer loaded: roll out {rollout.previous} "
                               "again")  # fmt: skip
            else:
                raise ApiError(ErrorCode.rollout_conflict, f"the rollout of {rollout.candidate} has ended "
                               f"({rollout.status.replace('_', ' ')}): there is nothing to end")  # fmt: skip
            rollout.status, rollout.reason, rollout.ended_at = status, why.reason, time.time()
            state.policy = TrafficPolicy(stable=back_to)
            state.record("rollout", f"{rollout.candidate} {status.replace('_', ' ')}: {why.reason}")
        self.metrics.rollout_step.labels(candidate=rollout.candidate).set(-1)
        self.metrics.rollouts.labels(result=status, reason=why.gate).inc()
        log.warning("rollout of %s %s: %s", rollout.candidate, status, why.reason)
        await self.models.converge(state)
        return rollout

    def _update(self) -> AbstractContextManager[ServingState]:
        return self.models.store.update(self.models.initial_state())


GATES = {
    "rollout_step_min_requests",
    "rollout_step_min_seconds",
    "rollout_max_p99_ratio",
    "rollout_max_error_ratio",
    "rollout_min_agreement",
    "rollout_max_confidence_drop",
}


def _figures(window: StatsTotals) -> dict[str, float | int | None]:
    p99 = window.latency_quantile(0.99)
    return {
        "requests": window.requests,
        "errors": window.errors,
        "error_rate": window.error_rate,
        "p99_seconds": p99,
        "mean_confidence": window.mean_confidence,
        "shadow_compared": window.shadow_compared,
        "agreement": window.agreement,
        "mean_shadow_shift": window.mean_shadow_shift,
    }


def _rebased(rollout: Rollout, totals: dict[str, StatsTotals]) -> Rollout:
    """``rollout`` with fresh baselines for a version whose totals went down (its processes restarted), so that a
    step's window never counts negative."""
    fresh = {}
    for version, baseline in rollout.baselines.items():
        now = totals.get(version, StatsTotals())
        went_down = now.requests < baseline.requests or now.shadow_compared < baseline.shadow_compared
        fresh[version] = now if went_down else baseline
    if fresh == rollout.baselines:
        return rollout
    return rollout.model_copy(update={"baselines": fresh})
