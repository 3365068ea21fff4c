"""The request tracer's trace ids: random, as the SDK's own, except the id a request drew to ask the sampler
before making its span (:meth:`service.core.telemetry.tracing.Tracing.start_request`), which its span then gets.
Imported only when tracing is on."""

from __future__ import annotations

from opentelemetry.sdk.trace.id_generator import RandomIdGenerator


class PresetTraceIds(RandomIdGenerator):
    def __init__(self) -> None:
        self.preset: int | None = None  # the next trace id to hand out; used once

    def generate_trace_id(self) -> int:
        preset, self.preset = self.preset, None
        return super().generate_trace_id() if preset is None else preset
