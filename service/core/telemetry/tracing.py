"""The spans of predictions, made with the OpenTelemetry SDK (imported only when tracing is on:
:mod:`service.core.telemetry.otel_environment`).

A sampled request gets a span (named by its route) with one child per stage. A model call that served a sampled
request gets a span of its own, in a trace of its own, with a link to each sampled request it served: a batch has
many requests, and a span has one parent.

The spans are records of a timing already taken. The SDK's sampler decides when a request starts; its spans are
made when it ends, as the SDK's ``ReadableSpan`` (the form its span processors and exporters take), and handed to
its batch processor. The SDK's live spans are made to change while they run, with a lock, bounded attributes and
events, and a sampler call each: eight of them per sampled request took about 200 us of the event loop on this
project's CPU, which alone put tracing at 1 % sampling over its budget. The records take about 30 us.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

from service.core.telemetry.stages import STAGES, BatchTiming, RequestTiming

TRACEPARENT = "traceparent"
REQUESTS = InstrumentationScope("digits.inference")
BATCHES = InstrumentationScope("digits.batcher")
UNSET = Status(StatusCode.UNSET)

# perf_counter readings as the epoch nanoseconds spans carry
_EPOCH_NS = time.time_ns()
_COUNTER = time.perf_counter()


def epoch_ns(counter: float) -> int:
    return _EPOCH_NS + int((counter - _COUNTER) * 1e9)


@dataclass(slots=True)
class RequestSpan:
    """The span of a sampled request, sent when the request ends."""

    name: str  # its route
    context: SpanContext
    parent: SpanContext | None  # from its traceparent
    attributes: Attributes  # as the sampler gave them back


class Tracing:
    """The spans of one process's requests (sampled as the SDK is told) and batches (recorded whenever they served
    a sampled request), exported through one batch processor."""

    def __init__(self, exporter: SpanExporter, service_name: str) -> None:
        # the SDK's configuration: the sampler from OTEL_TRACES_SAMPLER, the id generator, the resource
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        self._processor = BatchSpanProcessor(exporter)
        provider.add_span_processor(self._processor)  # flushed when the provider shuts down
        self._provider, self._sampler, self._ids = provider, provider.sampler, provider.id_generator
        self._resource = provider.resource
        self._propagator = TraceContextTextMapPropagator()
        random_ids = TraceFlags.RANDOM_TRACE_ID if self._ids.is_trace_id_random() else TraceFlags.DEFAULT
        self._root_flags = TraceFlags(TraceFlags.SAMPLED | random_ids)

    @staticmethod
    def attributes(route: str, version: str) -> dict[str, str]:
        """A request span's attributes: made once per route and version, and shared (never changed)."""
        return {"http.route": route, "digits.model.version": version}

    def start_request(
        self, timing: RequestTiming, route: str, attributes: Attributes, carrier: Mapping[str, str] | None
    ) -> None:
        """Ask the sampler about a request, the child of the carrier's ``traceparent`` if any; its span is kept on
        ``timing`` only when sampled."""
        context = parent = None
        if carrier is not None and TRACEPARENT in carrier:
            context = self._propagator.extract(carrier)
            parent = get_current_span(context).get_span_context()
            if not parent.is_valid:
                parent = None
        trace_id = self._ids.generate_trace_id() if parent is None else parent.trace_id
        sampled = self._sampler.should_sample(context, trace_id, route, SpanKind.SERVER, attributes)
        if not sampled.decision.is_sampled():
            return
        flags = self._root_flags if parent is None else TraceFlags(parent.trace_flags | TraceFlags.SAMPLED)
        own = SpanContext(trace_id, self._ids.generate_span_id(), False, flags, sampled.trace_state)
        timing.span = RequestSpan(route, own, parent, sampled.attributes)

    def trace_id(self, timing: RequestTiming) -> str | None:
        """The hex trace id of a sampled request (None otherwise): the exemplar of its observations."""
        if timing.span is None:
            return None
        return format(timing.span.context.trace_id, "032x")

    def batch_ran(self, batch: BatchTiming) -> None:
        """Send the span of a model call that served a sampled request, once."""
        if batch.traced:
            return
        batch.traced = True
        links = [Link(request.span.context) for request in batch.requests if request.span is not None]
        own = SpanContext(self._ids.generate_trace_id(), self._ids.generate_span_id(), False, self._root_flags)
        attributes = {"digits.batch.images": batch.size, "digits.batch.requests": len(batch.requests)}
        self._send(BATCHES, "batch", own, None, batch.taken, batch.model_ended, attributes, links=links)

    def finish_request(self, timing: RequestTiming) -> None:
        """Send a sampled request's span, with a child span per stage."""
        span, batch = timing.span, timing.batch
        if span is None or batch is None:
            return
        self._send_request(span, timing.started, timing.encoded)
        bounds = (
            timing.started,
            timing.read,
            timing.prepared,
            batch.taken,
            batch.model_started,
            timing.answered,
            timing.encoded,
        )
        trace_id, flags = span.context.trace_id, span.context.trace_flags
        for stage, start, end in zip(STAGES, bounds, bounds[1:], strict=False):
            own = SpanContext(trace_id, self._ids.generate_span_id(), False, flags)
            self._send(REQUESTS, stage, own, span.context, start, end)

    def fail_request(self, timing: RequestTiming, error: BaseException) -> None:
        """Send a sampled request's span as failed, with the error as its exception event."""
        span = timing.span
        if span is None:
            return
        exception = Event("exception", {
            "exception.type": type(error).__name__,
            "exception.message": str(error),
            "exception.stacktrace": "".join(traceback.format_exception(error)),
        })  # fmt: skip
        failed = Status(StatusCode.ERROR, type(error).__name__)
        self._send_request(span, timing.started, time.perf_counter(), status=failed, events=(exception,))

    def _send_request(
        self, span: RequestSpan, start: float, end: float, status: Status = UNSET, events: Sequence[Event] = ()
    ) -> None:
        self._send(REQUESTS, span.name, span.context, span.parent, start, end, span.attributes, kind=SpanKind.SERVER,
                   status=status, events=events)  # fmt: skip

    def _send(
        self,
        scope: InstrumentationScope,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        start: float,
        end: float,
        attributes: Attributes = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        links: Sequence[Link] = (),
        status: Status = UNSET,
        events: Sequence[Event] = (),
    ) -> None:
        start_ns, end_ns = epoch_ns(start), epoch_ns(end)
        span = ReadableSpan(name, context, parent, self._resource, attributes, events, links, kind, status=status,
                            start_time=start_ns, end_time=end_ns, instrumentation_scope=scope)  # fmt: skip
        self._processor.on_end(span)

    def shutdown(self) -> None:
        """Export what is still buffered."""
        self._provider.shutdown()
