"""Tracing as the OpenTelemetry SDK's own ``OTEL_*`` variables set it up.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter: ``otlp`` (OTLP over HTTP/protobuf, to
``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or ``console``. Off, nothing of the SDK
is imported and a request makes no span and reads no header. On, the sampler is the SDK's
(``OTEL_TRACES_SAMPLER``, ``OTEL_TRACES_SAMPLER_ARG``; parent-based always-on by default), the service name
``OTEL_SERVICE_NAME`` (``digits`` when unset), and a W3C ``traceparent`` on the request is the request span's parent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from service.core.telemetry.tracing import Tracing

EXPORTERS = ("otlp", "console")
DEFAULT_SERVICE_NAME = "digits"


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


def tracing_from_environment(environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """Tracing as the ``OTEL_*`` variables set it up; None when they leave it off."""
    if not tracing_enabled(environ):
        return None
    from service.core.telemetry.tracing import Tracing

    exporter: SpanExporter
    if environ["OTEL_TRACES_EXPORTER"].strip().lower() == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    return Tracing(exporter, environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME)
