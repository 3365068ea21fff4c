"""A request's telemetry on one route of one model version: its stage histograms, and its trace when on."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from service.core.metrics import Metrics
from service.core.telemetry.stages import RequestTiming, StageMetrics

if TYPE_CHECKING:
    from service.core.telemetry.tracing import Tracing


class RequestTelemetry:
    def __init__(self, metrics: Metrics, tracing: Tracing | None, version: str, route: str) -> None:
        self.stages = StageMetrics(metrics, version, route)
        self.tracing = tracing
        self.version, self.route = version, route
        self._span_attributes = None if tracing is None else tracing.attributes(route, version)

    def start(self, arrived: float | None, carrier: Mapping[str, str] | None) -> RequestTiming:
        """A request that arrived at ``arrived`` (perf_counter; None: now); ``carrier`` holds its headers
        (``traceparent``), read only when tracing is on."""
        timing = RequestTiming() if arrived is None else RequestTiming(arrived)
        if self.tracing is not None:
            self.tracing.start_request(timing, self.route, self._span_attributes, carrier)
        return timing

    def answered(self, timing: RequestTiming) -> None:
        """The request has its share of the model's output."""
        timing.answered = time.perf_counter()
        if timing.span is not None and self.tracing is not None and timing.batch is not None:
            self.tracing.batch_ran(timing.batch)

    def finish(self, timing: RequestTiming) -> None:
        """The request's answer is encoded: its stages are observed and its span ends."""
        timing.encoded = time.perf_counter()
        if self.tracing is None:
            self.stages.observe(timing, None)
            return
        self.stages.observe(timing, self.tracing.trace_id(timing))
        self.tracing.finish_request(timing)

    def failed(self, timing: RequestTiming, error: BaseException, refused: str | None = None) -> None:
        """The request ends in ``error``: a deadline refusal (``refused`` says when) or another failure."""
        if refused is not None:
            self.stages.refused(refused)
        if self.tracing is not None:
            self.tracing.fail_request(timing, error)
