"""Shadow traffic: a sampled copy of what the stable version answered goes to the candidate, off the response
path, and the candidate's answers are compared with stable's (top label agreement, confidence shift).

Shadow work never waits and never slows the stable path: a copy is dropped, not queued, while stable has requests
waiting or the candidate is still busy with the previous copy, and while the candidate's shadow model time is over
its cap as a share of all model time."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from service.core.errors import ApiError
from service.core.inference import Inference, Outcome
from service.core.metrics import Metrics

log = logging.getLogger(__name__)
NO_LAYERS: frozenset[str] = frozenset()


class ShadowRunner:
    def __init__(self, metrics: Metrics, max_share: float) -> None:
        self.max_share = max_share
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._shadow_seconds = 0.0

    def offer(self, outcome: Outcome[Any], stable: Inference, candidate: Inference) -> bool:
        """Send a copy of ``outcome``'s images to ``candidate`` unless that would compete with stable; whether it
        went."""
        reason = self._refusal(stable, candidate)
        if reason is not None:
            self._metrics.shadow_dropped.labels(version=candidate.card.version, reason=reason).inc()
            return False
        task = asyncio.create_task(self._compare(outcome, candidate), name=f"shadow-{candidate.card.version}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _refusal(self, stable: Inference, candidate: Inference) -> str | None:
        if stable.batcher.queued or candidate.batcher.in_flight or candidate.batcher.closing:
            return "busy"
        all_model_seconds = stable.batcher.model_seconds + self._shadow_seconds
        if all_model_seconds and self._shadow_seconds > self.max_share * all_model_seconds:
            return "share"
        return None

    async def _compare(self, outcome: Outcome[Any], candidate: Inference) -> None:
        started = time.perf_counter()
        try:
            answer = await candidate.batcher.submit(outcome.batch, NO_LAYERS)
        except ApiError:  # the candidate is overloaded or stopping: a copy is dropped, never retried
            self._metrics.shadow_dropped.labels(version=candidate.card.version, reason="busy").inc()
            return
        except Exception:
            log.exception("shadow copy to %s failed", candidate.card.version)
            return
        finally:
            self._shadow_seconds += time.perf_counter() - started
        candidate.stats.shadowed(outcome.output.probabilities, answer.probabilities)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
