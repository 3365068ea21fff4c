"""The wrk driver against a real echo server: counts, latency percentiles, errors, its own CPU."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wrk import Wrk, WrkError
from loadtest.samples import load_samples
from loadtest.workloads import HttpRequest, Workload, predict_requests
from ops.local_servers import free_port
from tests.servers import echo_peer

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def echo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with echo_peer(tmp_path_factory.mktemp("echo")) as url:
        yield url


@pytest.fixture(scope="module")
def wrk() -> Iterator[Wrk]:
    with Wrk() as driver:
        yield driver


def test_a_run_counts_requests_and_latency(wrk: Wrk, echo_url: str) -> None:
    result = wrk.run(echo_url, predict_requests(Workload.pixels, load_samples()), connections=2, duration_s=1)
    assert result.requests > 10
    assert result.errors == 0
    assert 0.9 < result.duration_s < 3
    assert result.rps == pytest.approx(result.requests / result.duration_s)
    assert 0 < result.p50_ms <= result.p90_ms <= result.p95_ms <= result.p99_ms <= result.max_ms
    # wrk's own CPU: measured, and well under a core at two connections.
    assert 0 < result.generator_cpu < 1.0


def test_multipart_bodies_reach_the_server_intact(wrk: Wrk, echo_url: str) -> None:
    result = wrk.run(echo_url, predict_requests(Workload.png, load_samples()[:3]), connections=1, duration_s=1)
    assert result.requests > 0 and result.errors == 0


def test_error_statuses_are_counted(wrk: Wrk, echo_url: str) -> None:
    missing = [HttpRequest("POST", "/no-such-route", "application/json", b"{}", 0)]
    result = wrk.run(echo_url, missing, connections=1, duration_s=1)
    assert result.requests > 0
    assert result.errors == result.requests


def test_a_server_that_is_not_there_is_an_error(wrk: Wrk) -> None:
    request = HttpRequest("POST", "/", "application/json", b"{}", 0)
    with pytest.raises(WrkError, match="unable to connect"):
        wrk.run(f"http://127.0.0.1:{free_port()}", [request], connections=1, duration_s=1)


def test_one_run_sends_one_content_type(wrk: Wrk, echo_url: str) -> None:
    mixed = [
        HttpRequest("POST", "/", "application/json", b"{}", 0),
        HttpRequest("POST", "/", "text/plain", b"x", 0),
    ]
    with pytest.raises(ValueError, match="one method and content type"):
        wrk.run(echo_url, mixed, connections=1, duration_s=1)


def test_the_scratch_folder_goes_away_on_close() -> None:
    driver = Wrk()
    scratch = Path(driver._scratch)
    assert (scratch / "bench.lua").is_file()
    driver.close()
    assert not scratch.exists()
