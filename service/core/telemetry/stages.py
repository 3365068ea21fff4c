"""Where a request's time goes: one clock reading at each boundary between its stages, so that the stages of a
request add up to the time from the start of ``Inference.run`` to the end of its answer's encoding.

    read -> decode (decode and preprocess) -> queue -> assembly -> model -> encode

``read`` runs from the request's arrival (as the protocol took it in, routing included) until its body is read;
``queue`` from the end of preprocessing until the batcher takes the request's batch (admission and the idle path's
one yield included); ``assembly`` until the model starts on the batch; ``model`` until the request has its share
back in its own task (the model call, then the hand-back through the event loop); ``encode`` is the protocol
adapter writing its answer (``Outcome.encode``). What is left of the HTTP request's total is sending the answer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service.core.metrics import Metrics

if TYPE_CHECKING:
    from service.core.telemetry.tracing import RequestSpan

STAGES = ("read", "decode", "queue", "assembly", "model", "encode")


@dataclass(slots=True)
class BatchTiming:
    """One model call, shared by the requests it served (perf_counter seconds)."""

    taken: float
    size: int
    requests: list[RequestTiming]
    model_started: float = 0.0
    model_ended: float = 0.0
    traced: bool = False  # its span is out: the first of its traced requests to resume sends it


@dataclass(slots=True)
class RequestTiming:
    """The boundaries of one request's stages (perf_counter seconds), and its span when it is traced."""

    started: float = field(default_factory=time.perf_counter)
    read: float = 0.0
    prepared: float = 0.0
    answered: float = 0.0
    encoded: float = 0.0
    batch: BatchTiming | None = None
    span: RequestSpan | None = None  # the request was sampled

    def durations(self) -> tuple[float, ...]:
        """Seconds in each of :data:`STAGES`, in that order; once the request is encoded."""
        batch = self.batch
        assert batch is not None, "a request's durations are read once its batch has run"
        return (
            self.read - self.started,
            self.prepared - self.read,
            batch.taken - self.prepared,
            batch.model_started - batch.taken,
            self.answered - batch.model_started,
            self.encoded - self.answered,
        )


class StageMetrics:
    """The stage histograms and deadline refusals of one model version on one route, looked up once."""

    def __init__(self, metrics: Metrics, version: str, route: str) -> None:
        self._seconds = [metrics.stage_seconds.labels(version=version, route=route, stage=s) for s in STAGES]
        self._tallies = [metrics.tallies.histogram(child) for child in self._seconds]
        self._refusals = metrics.deadline_refusals
        self._version, self._route = version, route

    def observe(self, timing: RequestTiming, trace_id: str | None) -> None:
        if trace_id:  # a traced request's observations carry its trace id as their exemplar
            exemplar = {"trace_id": trace_id}
            for child, seconds in zip(self._seconds, timing.durations(), strict=True):
                child.observe(seconds, exemplar)
            return
        for tally, seconds in zip(self._tallies, timing.durations(), strict=True):
            tally.observe(seconds)

    def refused(self, when: str) -> None:
        self._refusals.labels(version=self._version, route=self._route, when=when).inc()
