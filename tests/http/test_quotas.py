"""Per API key quotas on a real 2-worker gateway: 429 with Retry-After and the RateLimit fields, the quota held for
the whole server (its buckets shared by the workers), counted by key name; and the bucket itself."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.local_servers import ServerProcess
from service.core.api_keys import Caller, new_key
from service.core.quotas import LocalBuckets, Quota, SharedBuckets
from service.core.schemas import EXAMPLE_PIXELS
from tests.servers import gateway_process

RPS = 4
IPS = 10


class Keys:
    def __init__(self, path: Path) -> None:
        self.requests, requests_line = new_key("ci")
        self.images, images_line = new_key("batch")
        self.free, free_line = new_key("free")
        self.viewer, viewer_line = new_key("viewer")
        lines = [f"{requests_line} rps={RPS}", f"{images_line} ips={IPS}", free_line, f"{viewer_line} rps=1"]
        path.write_text("".join(f"{line}\n" for line in lines))
        self.path = path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys") / "api-keys")


@pytest.fixture(scope="module")
def two_workers(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"DIGITS_API_KEYS_FILE": str(keys.path), "DIGITS_WORKERS": "2"}
    with gateway_process(tmp_path_factory.mktemp("quotas"), env, ready_timeout=120) as server:
        yield server


def predict(url: str, key: str, images: int = 1) -> httpx.Response:
    """On a new connection each time, so the kernel spreads the requests over both workers."""
    body = {"instances": [{"pixels": EXAMPLE_PIXELS}] * images, "preprocess": "none"}
    return httpx.post(f"{url}/v1/predict", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_the_requests_quota_holds_for_the_whole_server(two_workers: ServerProcess, keys: Keys) -> None:
    started = time.monotonic()
    statuses = [predict(two_workers.url, keys.requests).status_code for _ in range(4 * RPS)]
    elapsed = time.monotonic() - started
    admitted = statuses.count(200)
    # A full bucket (one second of the rate) and what it refilled while the requests were sent: shared by both
    # workers. Split per worker, the first second alone would have let 2 * RPS in.
    assert RPS <= admitted <= RPS + RPS * elapsed + 1, (statuses, elapsed)
    assert statuses.count(429) == len(statuses) - admitted


def test_a_refusal_is_429_with_retry_after_and_the_ratelimit_fields(two_workers: ServerProcess, keys: Keys) -> None:
    responses = [predict(two_workers.url, keys.requests) for _ in range(2 * RPS + 2)]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Policy"] == f'"requests";q={RPS};w=1'
    assert refused.headers["RateLimit"].startswith('"requests";r=0;t=')


def test_the_images_quota_is_charged_once_the_body_is_read(two_workers: ServerProcess, keys: Keys) -> None:
    first = predict(two_workers.url, keys.images, images=IPS)
    second = predict(two_workers.url, keys.images, images=IPS)
    assert first.status_code == 200
    assert second.status_code == 429 and second.json()["error"]["code"] == "quota_exceeded"
    # what is left is less than the request needs: how much less, the time between the two requests decides
    ratelimit = re.fullmatch(r'"images";r=(\d+);t=(\d+)', second.headers["RateLimit"])
    assert ratelimit is not None and int(ratelimit[1]) < IPS and int(ratelimit[2]) >= 1, second.headers["RateLimit"]
    assert "per second" in second.json()["error"]["message"]


def test_a_key_without_quota_is_never_refused_and_metrics_name_the_key(two_workers: ServerProcess, keys: Keys) -> None:
    assert all(predict(two_workers.url, keys.free).status_code == 200 for _ in range(3 * RPS))
    metrics = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    assert 'digits_key_requests_total{key_name="free"}' in metrics
    assert 'digits_quota_refusals_total{key_name="ci",quota="requests"}' in metrics
    assert 'digits_key_images_total{key_name="batch"}' in metrics
    for key in (keys.requests, keys.images, keys.free):
        assert key not in metrics


def test_the_dashboards_polls_are_charged_to_no_quota(two_workers: ServerProcess, keys: Keys) -> None:
    headers = {"Authorization": f"Bearer {keys.viewer}"}
    polls = [httpx.get(f"{two_workers.url}/v1/metrics/summary", headers=headers, timeout=30) for _ in range(5)]
    assert [poll.status_code for poll in polls] == [200] * 5  # a key with rps=1
    assert httpx.get(f"{two_workers.url}/v1/metrics/summary", timeout=30).status_code == 401  # a key is still needed
    assert predict(two_workers.url, keys.viewer).status_code == 200  # its bucket is full: the polls took nothing
    metrics = httpx.get(f"{two_workers.url}/metrics", timeout=10).text
    assert 'digits_key_requests_total{key_name="viewer"} 1.0' in metrics


def test_a_bucket_refills_at_its_rate_and_lets_a_large_request_into_debt(tmp_path: Path) -> None:
    for buckets in (LocalBuckets(), SharedBuckets(tmp_path / "buckets")):
        assert [buckets.take("k", 2.0, 1, 100.0).granted for _ in range(3)] == [True, True, False]
        assert buckets.take("k", 2.0, 1, 100.5).granted  # half a second refills one token
        refused = buckets.take("k", 2.0, 1, 100.5)
        assert not refused.granted and refused.wait_seconds == pytest.approx(0.5)
        assert buckets.take("big", 2.0, 5, 0.0).granted  # more than a bucket: taken from a full one, into debt
        assert not buckets.take("big", 2.0, 1, 1.0).granted  # 2 - 5 + 2 = -1 tokens


def test_two_processes_share_the_bucket_file(tmp_path: Path) -> None:
    one, other = SharedBuckets(tmp_path / "buckets"), SharedBuckets(tmp_path / "buckets")
    assert one.take("k", 1.0, 1, 10.0).granted
    assert not other.take("k", 1.0, 1, 10.0).granted


def test_quota_options_are_read_off_the_key_line() -> None:
    assert Quota.of(Caller("a", options={"rps": "2.5", "ips": "100"})) == Quota(2.5, 100.0)
    assert Quota.of(Caller("a", options={"rps": "fast"})) is None
    assert Quota.of(Caller("a", options={"ips": "-1", "rps": "3"})) == Quota(3.0, None)
    assert Quota(2.5, 100.0).policy_header() == '"requests";q=2.5;w=1, "images";q=100;w=1'
