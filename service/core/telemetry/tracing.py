"""OpenTelemetry tracing of predictions, configured by the SDK's own ``OTEL_*`` variables.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter: ``otlp`` (OTLP over HTTP/protobuf, to
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``console``. Off, nothing of the SDK
is imported and a request makes no span and reads no header. On, the sampler is the SDK's
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``; parent-based always-on by default), the service name
``OTEL_SERVICE_NAME`` (``digits`` when unset), and a W3C ``traceparent`` on the request is the request span's parent.

A sampled request gets a span (named by its route) with one child per stage, made after the fact from the
request's stage timing. A model call that served a sampled request gets a span of its own, in a trace of its own,
with a link to each sampled request it served: a batch has many requests, and a span has one parent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from service.core.telemetry.stages import STAGES, BatchTiming, RequestTiming

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.trace import Tracer

EXPORTERS = ("otlp", "console")
TRACEPARENT = "traceparent"
DEFAULT_SERVICE_NAME = "digits"

# perf_counter readings as the epoch nanoseconds spans carry
_EPOCH_NS = time.time_ns()
_COUNTER = time.perf_counter()


def epoch_ns(counter: float) -> int:
    return _EPOCH_NS + int((counter - _COUNTER) * 1e9)


def tracing_enabled(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces; raises on an exporter this gateway does not ship."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if exporter in ("", "none"):
        return False
    if exporter not in EXPORTERS:
        raise ValueError(f"OTEL_TRACES_EXPORTER={exporter!r} is not one of none, {', '.join(EXPORTERS)}")
    return True


class Tracing:
    """The tracers of one process: requests (sampled as the SDK is told) and batches (recorded whenever they
    served a sampled request), both exporting through one batch processor."""

    def __init__(self, exporter: SpanExporter, service_name: str) -> None:
        from opentelemetry.propagators.textmap import TextMapPropagator
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from service.core.telemetry.trace_ids import PresetTraceIds

        resource = Resource.create({"service.name": service_name})
        processor = BatchSpanProcessor(exporter)
        self._ids = PresetTraceIds()
        # its sampler from OTEL_TRACES_SAMPLER
        self._provider: TracerProvider = TracerProvider(resource=resource, id_generator=self._ids)
        self._sampler: Sampler = self._provider.sampler
        self._provider.add_span_processor(processor)
        batches = TracerProvider(resource=resource, sampler=ALWAYS_ON)
        batches.add_span_processor(processor)
        self._tracer: Tracer = self._provider.get_tracer("digits.inference")
        self._batch_tracer: Tracer = batches.get_tracer("digits.batcher")
        self._propagator: TextMapPropagator = TraceContextTextMapPropagator()
        self._server = SpanKind.SERVER

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Tracing | None:
        """Tracing as the ``OTEL_*`` variables set it up; None when they leave it off."""
        if not tracing_enabled(environ):
            return None
        exporter: SpanExporter
        if environ["OTEL_TRACES_EXPORTER"].strip().lower() == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        return cls(exporter, environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME)

    def start_request(self, timing: RequestTiming, route: str, version: str, carrier: Mapping[str, str] | None) -> None:
        """Start the request's span, the child of the carrier's ``traceparent`` if any; kept on ``timing`` only
        when sampled. A request without a ``traceparent`` draws its trace id and asks the sampler first, and makes
        no span at all when the answer is no: at 1 % sampling, the SDK's unsampled span costs more than all of
        this gateway's own per-request telemetry. The SDK then samples the same id the same way (its samplers
        decide by the trace id and the parent alone)."""
        if carrier is not None and TRACEPARENT in carrier:
            context = self._propagator.extract(carrier)
        else:
            trace_id = self._ids.generate_trace_id()
            if not self._sampler.should_sample(None, trace_id, route).decision.is_sampled():
                return
            self._ids.preset = trace_id
            context = None
        span = self._tracer.start_span(
            route,
            context,
            kind=self._server,
            attributes={"http.route": route, "digits.model.version": version},
            start_time=epoch_ns(timing.started),
        )
        if span.is_recording():
            timing.span = span

    def trace_id(self, timing: RequestTiming) -> str | None:
        """The hex trace id of a sampled request (None otherwise): the exemplar of its observations."""
        if timing.span is None:
            return None
        return format(timing.span.get_span_context().trace_id, "032x")

    def batch_ran(self, batch: BatchTiming) -> None:
        """Send the span of a model call that served a sampled request, once."""
        if batch.traced:
            return
        from opentelemetry.trace import Link

        batch.traced = True
        links = [Link(request.span.get_span_context()) for request in batch.requests if request.span is not None]
        span = self._batch_tracer.start_span(
            "batch",
            links=links,
            attributes={"digits.batch.images": batch.size, "digits.batch.requests": len(batch.requests)},
            start_time=epoch_ns(batch.taken),
        )
        span.end(end_time=epoch_ns(batch.model_ended))

    def finish_request(self, timing: RequestTiming) -> None:
        """End a sampled request's span, with a child span per stage."""
        from opentelemetry.trace import set_span_in_context

        span, batch = timing.span, timing.batch
        if span is None or batch is None:
            return
        parent = set_span_in_context(span)
        bounds = (
            timing.started,
            timing.read,
            timing.prepared,
            batch.taken,
            batch.model_started,
            timing.answered,
            timing.encoded,
        )
        for stage, start, end in zip(STAGES, bounds, bounds[1:], strict=False):
            self._tracer.start_span(stage, parent, start_time=epoch_ns(start)).end(end_time=epoch_ns(end))
        span.end(end_time=epoch_ns(timing.encoded))

    def fail_request(self, timing: RequestTiming, error: BaseException) -> None:
        """End a sampled request's span as failed."""
        from opentelemetry.trace import Status, StatusCode

        span = timing.span
        if span is None:
            return
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()

    def shutdown(self) -> None:
        """Export what is still buffered."""
        self._provider.shutdown()
