"""Tracing for real: a `digits serve` process exporting to the OTLP/HTTP receiver of ops/otlp_receiver.py."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from ops.local_servers import ServerProcess
from ops.otlp_receiver import OtlpReceiver, ReceivedSpan
from service.core.telemetry.stages import STAGES
from tests.bursts import burst, post_request
from tests.servers import gateway_process

V1 = "/v1/predict"
V2 = "/v2/models/digits/infer"
SERVER, ERROR = 2, 2  # OTLP's span kind and status code


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    running = OtlpReceiver().start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def gateway(receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "digits-under-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: export soon after a span ends
        "DIGITS_MAX_BATCH_WAIT_MS": "20",  # a burst's requests share batches, whatever their arrival's spread
    }
    with gateway_process(tmp_path_factory.mktemp("tracing"), env) as server:
        yield server


def traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def v1_body(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(28, 28))
    return orjson.dumps({"instances": [{"pixels": pixels.tolist()}], "preprocess": "none"})


def v2_body(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(1, 28, 28))
    return orjson.dumps({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28],
                                     "data": pixels.ravel().tolist()}]})  # fmt: skip


def spans_of(receiver: OtlpReceiver, trace_ids: set[str], count: int) -> list[ReceivedSpan]:
    """The received spans of ``trace_ids``, once there are ``count`` of them (the exporter sends in batches)."""
    return new_spans(receiver, 0, lambda span: span.trace_id in trace_ids, count)


def new_spans(
    receiver: OtlpReceiver, seen: int, wanted: Callable[[ReceivedSpan], bool], count: int = 1, timeout: float = 30
) -> list[ReceivedSpan]:
    """The spans received after the first ``seen`` that are ``wanted``, once there are ``count`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        spans = [span for span in receiver.received()[seen:] if wanted(span)]
        if len(spans) >= count or time.monotonic() > deadline:
            return spans
        time.sleep(0.1)


def check_request_trace(spans: list[ReceivedSpan], trace_id: str, parent: str, route: str) -> ReceivedSpan:
    """The request span, the child of the ``traceparent``'s span, and its one span per stage, back to back."""
    (request,) = [span for span in spans if span.trace_id == trace_id and span.parent_span_id == parent]
    assert request.name == route and request.service == "digits-under-test"
    assert request.attributes["digits.model.version"]
    stages = sorted((s for s in spans if s.parent_span_id == request.span_id), key=lambda s: s.start_ns)
    assert [stage.name for stage in stages] == list(STAGES)
    assert stages[0].start_ns == request.start_ns and stages[-1].end_ns == request.end_ns
    for before, after in itertools.pairwise(stages):
        assert before.end_ns == after.start_ns and before.start_ns <= before.end_ns
    return request


@pytest.mark.parametrize(("path", "body"), [(V1, v1_body), (V2, v2_body)], ids=["v1", "v2"])
def test_a_request_with_a_traceparent_is_traced_under_that_parent(
    gateway: ServerProcess, receiver: OtlpReceiver, path: str, body: object
) -> None:
    assert callable(body)
    header, trace_id, parent = traceparent()
    answer = httpx.post(
        f"{gateway.url}{path}", content=body(0), headers={"Content-Type": "application/json", "traceparent": header}
    )
    assert answer.status_code == 200, answer.text
    spans = spans_of(receiver, {trace_id}, 1 + len(STAGES))
    route = V1 if path == V1 else "/v2/models/{model_name}/infer"
    request = check_request_trace(spans, trace_id, parent, route)
    batches = [span for span in receiver.received() if (trace_id, request.span_id) in span.links]
    deadline = time.monotonic() + 30
    while not batches and time.monotonic() < deadline:
        time.sleep(0.1)
        batches = [span for span in receiver.received() if (trace_id, request.span_id) in span.links]
    (batch,) = batches
    assert batch.name == "batch" and batch.trace_id != trace_id and batch.parent_span_id == ""
    assert batch.attributes["digits.batch.images"] >= 1


def test_a_batch_span_links_to_every_request_it_served(gateway: ServerProcess, receiver: OtlpReceiver) -> None:
    parents = [traceparent() for _ in range(16)]
    requests = [post_request(V1, v1_body(i), {"traceparent": header}) for i, (header, _, _) in enumerate(parents)]
    assert asyncio.run(burst(int(gateway.url.rsplit(":", 1)[1]), requests)) == [200] * 16
    trace_ids = {trace_id for _, trace_id, _ in parents}
    spans = spans_of(receiver, trace_ids, 16 * (1 + len(STAGES)))
    served = {(t, check_request_trace(spans, t, p, V1).span_id) for _, t, p in parents}
    deadline = time.monotonic() + 30
    while True:
        batches = [span for span in receiver.received() if served & set(span.links)]
        linked = {link for batch in batches for link in batch.links} & served
        if linked == served or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert linked == served  # every request's model call has its span
    assert len(batches) < 16 and any(len(batch.links) > 1 for batch in batches)  # and some served several
    for batch in batches:
        assert batch.attributes["digits.batch.requests"] == len(batch.links)


def test_exemplars_carry_the_trace_ids_of_traced_requests(gateway: ServerProcess) -> None:
    header, trace_id, _ = traceparent()
    answer = httpx.post(
        f"{gateway.url}{V1}", content=v1_body(7), headers={"Content-Type": "application/json", "traceparent": header}
    )
    assert answer.status_code == 200
    plain = httpx.get(f"{gateway.url}/metrics")
    assert plain.headers["content-type"].startswith("text/plain") and " # {" not in plain.text
    scraped = httpx.get(f"{gateway.url}/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert scraped.headers["content-type"].startswith("application/openmetrics-text")
    exemplars: dict[str, set[str]] = {}  # each stage's buckets keep the trace id of the last traced request in them
    for family in text_string_to_metric_families(scraped.text):
        for sample in family.samples:
            if sample.name == "digits_stage_seconds_bucket" and sample.exemplar and sample.labels["route"] == V1:
                exemplars.setdefault(sample.labels["stage"], set()).add(sample.exemplar.labels["trace_id"])
    assert set(exemplars) == set(STAGES)
    assert all(trace_id in ids for ids in exemplars.values()), exemplars  # in the bucket of each of its stages


def test_a_request_without_a_traceparent_starts_a_trace_of_its_own(
    gateway: ServerProcess, receiver: OtlpReceiver
) -> None:
    seen = len(receiver.received())
    answer = httpx.post(f"{gateway.url}{V1}", content=v1_body(3), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    (request,) = new_spans(receiver, seen, lambda span: span.name == V1 and not span.parent_span_id)  # always on
    assert request.parent_span_id == "" and request.kind == SERVER and request.scope == "digits.inference"
    spans = spans_of(receiver, {request.trace_id}, 1 + len(STAGES))
    check_request_trace(spans, request.trace_id, "", V1)


def test_a_failed_request_has_a_span_with_its_error(gateway: ServerProcess, receiver: OtlpReceiver) -> None:
    header, trace_id, parent = traceparent()
    answer = httpx.post(
        f"{gateway.url}{V1}", content=b'{"instances": [{"pixels": [[1, 2]]}]}',
        headers={"Content-Type": "application/json", "traceparent": header},
    )  # fmt: skip
    assert answer.status_code == 422, answer.text
    (request,) = spans_of(receiver, {trace_id}, 1)
    assert request.parent_span_id == parent and request.name == V1 and request.kind == SERVER
    assert request.status == ERROR
    assert request.events["exception"]["exception.type"] == "ApiError"
    assert answer.json()["error"]["message"] in request.events["exception"]["exception.message"]
    time.sleep(0.5)  # a failed request has no stage spans
    assert [span.name for span in receiver.received() if span.trace_id == trace_id] == [V1]


def test_the_sampler_is_the_one_the_environment_names(receiver: OtlpReceiver, tmp_path: Path) -> None:
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "digits-under-test",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0",  # no trace of its own; a caller's sampled trace is followed
    }
    with gateway_process(tmp_path, env) as server:
        seen = len(receiver.received())
        sampled, sampled_id, sampled_parent = traceparent()
        unsampled, unsampled_id, _ = traceparent()
        for headers in ({}, {"traceparent": unsampled[:-2] + "00"}, {"traceparent": sampled}):
            answer = httpx.post(
                f"{server.url}{V1}", content=v1_body(5), headers={"Content-Type": "application/json", **headers}
            )
            assert answer.status_code == 200
        spans = spans_of(receiver, {sampled_id}, 1 + len(STAGES))
        check_request_trace(spans, sampled_id, sampled_parent, V1)
        time.sleep(0.5)
    ours = {"", sampled_id, unsampled_id}  # a trace of its own, or one of the callers'
    requests = [
        span for span in receiver.received()[seen:] if span.name == V1 and {span.trace_id, span.parent_span_id} & ours
    ]
    assert [span.trace_id for span in requests] == [sampled_id]
