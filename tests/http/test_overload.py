"""Overload on a real gateway: an open loop at twice the capacity measured in the same run.

The requests carry 16 digits each, so that the model, which the deadline-based admission watches through
the batcher's measured rate, is what saturates (with one digit per request, the HTTP work of the event
loop saturates first on this 2-core machine).

The server's own measurements (its histograms, read before and after) must show every accepted request
started within the queue deadline and every answer, accepted or refused, given within the deadline plus
one batch (the p99 of the batches in this run) plus the latency the same requests have anyway at half
the capacity (measured in this run);
every other request gets 503 with Retry-After; no request times out; the server is healthy afterwards.
The client's own figures are printed: on this 2-core machine the load generator shares the CPUs with the
server, and its latencies also carry its own scheduling delays."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from loadtest.open_loop import closed_loop_capacity, open_loop
from loadtest.samples import load_samples
from loadtest.workloads import HttpRequest
from ops.local_servers import ServerProcess
from tests.servers import gateway_process

pytestmark = pytest.mark.slow

IMAGES_PER_REQUEST = 16
MAX_QUEUE_WAIT_MS = 100
MAX_BATCH_SIZE = 64
CLIENT_TIMEOUT_SECONDS = 10


@pytest.fixture(scope="module")
def overload_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"DIGITS_MAX_QUEUE_WAIT_MS": str(MAX_QUEUE_WAIT_MS), "DIGITS_MAX_BATCH_SIZE": str(MAX_BATCH_SIZE)}
    with gateway_process(tmp_path_factory.mktemp("overload"), env) as server:
        yield server


def requests_of_16_digits() -> list[HttpRequest]:
    samples = load_samples()
    bodies = [
        orjson.dumps({"instances": [{"pixels": s.pixels} for s in samples[i : i + IMAGES_PER_REQUEST]],
                      "preprocess": "none"})
        for i in range(0, len(samples) - IMAGES_PER_REQUEST, 3)
    ]  # fmt: skip
    return [HttpRequest("POST", "/v1/predict", "application/json", body, -1) for body in bodies]


def histogram(url: str, name: str, route: str | None = None) -> dict[float, float]:
    """Cumulative bucket counts of one histogram of the gateway, by upper bound."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == f"{name}_bucket" and (route is None or sample.labels.get("route") == route):
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of what was observed between two readings, interpolated inside its bucket."""
    counts = sorted((bound, after[bound] - before.get(bound, 0.0)) for bound in after)
    rank, lower, below = q * counts[-1][1], 0.0, 0.0
    for bound, count in counts:
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def test_twice_the_capacity_is_answered_within_the_deadline_or_refused(overload_gateway: ServerProcess) -> None:
    url = overload_gateway.url
    requests = requests_of_16_digits()
    tagged = [("16-digits", request) for request in requests]
    capacity = asyncio.run(closed_loop_capacity(url, requests, concurrency=16, seconds=6))
    calm = asyncio.run(open_loop(url, tagged, rate=capacity / 2, seconds=5, timeout_seconds=CLIENT_TIMEOUT_SECONDS))
    waits_before = histogram(url, "digits_queue_wait_seconds")
    batches_before = histogram(url, "digits_inference_duration_seconds")
    durations_before = histogram(url, "digits_http_request_duration_seconds", "/v1/predict")
    overload = asyncio.run(
        open_loop(url, tagged, rate=2 * capacity, seconds=10, timeout_seconds=CLIENT_TIMEOUT_SECONDS)
    )
    waits_after = histogram(url, "digits_queue_wait_seconds")
    durations_after = histogram(url, "digits_http_request_duration_seconds", "/v1/predict")
    batches_after = histogram(url, "digits_inference_duration_seconds")

    deadline = MAX_QUEUE_WAIT_MS / 1000
    batch_seconds = quantile(batches_before, batches_after, 0.99)  # one batch: the p99 of those in this run
    calm_p99 = calm.percentile(99)
    bound = deadline + batch_seconds + calm_p99
    started = waits_after[float("inf")] - waits_before.get(float("inf"), 0.0)
    started_in_time = waits_after[deadline] - waits_before.get(deadline, 0.0)
    server_p99 = quantile(durations_before, durations_after, 0.99)
    statuses = overload.statuses()
    refused = [o for o in overload.outcomes if o.status == 503]
    print(
        f"\ncapacity {capacity:.1f} req/s ({capacity * IMAGES_PER_REQUEST:.0f} digits/s); offered "
        f"{overload.offered_rate:.1f} req/s for {overload.seconds:.0f} s; statuses {dict(statuses)}; "
        f"503 share {len(refused) / len(overload.outcomes):.1%}; timeouts {overload.timeouts}; "
        f"{started_in_time:.0f} of {started:.0f} accepted requests started within the {MAX_QUEUE_WAIT_MS} ms deadline; "
        f"server-side p99 of all answers {server_p99 * 1000:.0f} ms (bound {bound * 1000:.0f} ms = deadline "
        f"{MAX_QUEUE_WAIT_MS} + batch {batch_seconds * 1000:.0f} + p99 at half load {calm_p99 * 1000:.0f}); "
        f"client-side: accepted p50 {overload.percentile(50) * 1000:.0f} ms, p99 {overload.percentile(99) * 1000:.0f} "
        f"ms, 503 p99 {overload.percentile(99, 503) * 1000:.0f} ms"
    )
    assert calm.timeouts == 0 and calm.statuses()[200] >= 0.9 * len(calm.outcomes)  # half the capacity is served
    assert overload.timeouts == 0 and overload.failures == 0
    assert set(statuses) == {200, 503}
    assert statuses[200] >= 0.3 * capacity * overload.seconds  # the server keeps serving under overload
    assert all(o.retry_after == "1" for o in refused)
    assert started_in_time == started  # no request ran late
    # A histogram resolves latency to its buckets (the quantile above interpolates inside one, as if uniform):
    # at least 99 % of the answers must lie in the buckets up to the first edge at or above the bound.
    edge = min(upper for upper in durations_after if upper >= bound)
    answered = durations_after[float("inf")] - durations_before.get(float("inf"), 0.0)
    assert durations_after[edge] - durations_before.get(edge, 0.0) >= 0.99 * answered, (server_p99, bound, edge)

    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
    for request in requests[:10]:  # one at a time: nothing queues, so every one is served
        answer = httpx.post(f"{url}/v1/predict", content=request.body, headers={"Content-Type": request.content_type})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == IMAGES_PER_REQUEST
    metrics = httpx.get(f"{url}/metrics").text
    assert 'digits_errors_total{code="queue_full"}' in metrics
    assert 'code="internal_error"' not in metrics
