"""A small OTLP/HTTP trace receiver: ``POST /v1/traces`` with an ExportTraceServiceRequest (protobuf, gzip or
not); every span is kept and written as one JSON line. The tests send the gateway's traces to it, and the compose
``tracing`` profile runs it, as no OpenTelemetry Collector or Jaeger image or package can be had here.

    python -m ops.otlp_receiver --host 0.0.0.0 --port 4318
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    name: str
    start_ns: int
    end_ns: int
    links: list[tuple[str, str]]  # (trace id, span id)
    attributes: dict[str, Any]
    status: int  # 0 unset, 1 ok, 2 error
    kind: int  # 1 internal, 2 server
    scope: str  # the instrumentation scope's name
    events: dict[str, dict[str, Any]]  # by name: the event's attributes


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


def decode_spans(body: bytes) -> list[ReceivedSpan]:
    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in span.links],
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        status=span.status.code,
                        kind=span.kind,
                        scope=scope_spans.scope.name,
                        events={e.name: {a.key: _value(a.value) for a in e.attributes} for e in span.events},
                    )
                )
    return spans


class OtlpReceiver:
    """The receiver on ``host:port`` (0: a free port), serving from a thread until :meth:`stop`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, out: TextIO | None = None) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._out = out
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self._answer(404, b"only /v1/traces", "text/plain")
                    return
                if self.headers.get("Content-Type", "").split(";")[0].strip() != PROTOBUF:
                    self._answer(415, b"OTLP/HTTP protobuf only", "text/plain")
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "") == "gzip":
                    body = gzip.decompress(body)
                try:
                    spans = decode_spans(body)
                except Exception as exc:  # a malformed export is the sender's problem, told as a 400
                    self._answer(400, str(exc).encode(), "text/plain")
                    return
                receiver._keep(spans)
                self._answer(200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF)

            def _answer(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL an OTLP exporter takes as OTEL_EXPORTER_OTLP_ENDPOINT."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _keep(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self.spans.extend(spans)
            if self._out is not None:
                for span in spans:
                    self._out.write(json.dumps(asdict(span)) + "\n")
                self._out.flush()

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4318)
    args = parser.parse_args(argv)
    receiver = OtlpReceiver(args.host, args.port, out=sys.stdout)
    print(f"OTLP/HTTP receiver on {receiver.endpoint}/v1/traces", file=sys.stderr, flush=True)
    receiver.serve_forever()


if __name__ == "__main__":
    main()
