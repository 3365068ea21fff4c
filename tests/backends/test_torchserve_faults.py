"""Faults of a real TorchServe behind a real gateway: a worker killed under load, the frontend killed.

TorchServe's script starts the Java frontend, which starts one Python worker process per model worker."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from loadtest.open_loop import LoadResult, open_loop
from loadtest.samples import load_samples
from loadtest.workloads import Workload, predict_requests
from ops.local_servers import ServerProcess, wait_until_ready
from ops.torchserve.launcher import TorchServe
from tests.backends.conftest import torchserve_env
from tests.servers import gateway_process

pytestmark = pytest.mark.torchserve

TIMEOUT_SECONDS = 5  # the gateway's TorchServe timeout here: a hang would show as a 504 after this long


@pytest.fixture(scope="module")
def ts_gateway(torchserve: TorchServe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = torchserve_env(torchserve, DIGITS_TORCHSERVE_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS))
    with gateway_process(tmp_path_factory.mktemp("ts-gateway"), env) as server:
        yield server


REQUESTS = [("pixels", r) for r in predict_requests(Workload.pixels, load_samples())]


def frontend(torchserve: TorchServe) -> psutil.Process:
    assert torchserve.pid is not None
    return next(p for p in psutil.Process(torchserve.pid).children() if "java" in p.name())


def workers(torchserve: TorchServe) -> list[psutil.Process]:
    return [p for p in frontend(torchserve).children(recursive=True) if "model_service_worker" in " ".join(p.cmdline())]


def load_in_background(url: str, rate: float, seconds: float) -> tuple[threading.Thread, list[LoadResult]]:
    results: list[LoadResult] = []
    thread = threading.Thread(
        target=lambda: results.append(asyncio.run(open_loop(url, REQUESTS, rate=rate, seconds=seconds,
                                                            timeout_seconds=3 * TIMEOUT_SECONDS)))
    )  # fmt: skip
    thread.start()
    return thread, results


def all_served(url: str, count: int = 20) -> bool:
    answers = [
        httpx.post(url + r.path, content=r.body, headers={"Content-Type": r.content_type}, timeout=30)
        for _, r in REQUESTS[:count]
    ]
    return all(a.status_code == 200 for a in answers)


def test_a_worker_killed_under_load(torchserve: TorchServe, ts_gateway: ServerProcess) -> None:
    before = workers(torchserve)
    assert len(before) == 2
    thread, results = load_in_background(ts_gateway.url, rate=60, seconds=10)
    time.sleep(3)
    before[0].send_signal(signal.SIGKILL)
    thread.join()
    outcome = results[0]
    failed = [o for o in outcome.outcomes if o.status != 200]
    slowest_failure = max((o.seconds for o in failed), default=0.0)
    print(
        f"\nTorchServe worker killed under {outcome.offered_rate:.0f} req/s: statuses {dict(outcome.statuses())}, "
        f"slowest non-200 answer {slowest_failure * 1000:.0f} ms, p99 of 200s {outcome.percentile(99) * 1000:.0f} ms"
    )
    assert outcome.timeouts == 0 and outcome.failures == 0  # never hangs: every request is answered
    assert set(outcome.statuses()) <= {200, 503, 504}
    assert slowest_failure <= TIMEOUT_SECONDS + 1  # 503 at once, or 504 at the gateway's own timeout
    deadline = time.monotonic() + 120
    while not (len(workers(torchserve)) == 2 and torchserve_ready(torchserve)):  # TorchServe restarts it
        assert time.monotonic() < deadline, "TorchServe did not restart the worker"
        time.sleep(0.5)
    wait_until_ready(f"{ts_gateway.url}/readyz", 30)
    assert all_served(ts_gateway.url)
    assert ts_gateway.process.poll() is None


def torchserve_ready(torchserve: TorchServe) -> bool:
    try:
        described = httpx.get(f"{torchserve.management_url}/models/digits", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all(worker["status"] == "READY" for worker in described[0]["workers"])


def test_the_frontend_killed_then_restarted(torchserve: TorchServe, ts_gateway: ServerProcess) -> None:
    assert all_served(ts_gateway.url, 4)
    frontend(torchserve).send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 15
    while httpx.get(f"{ts_gateway.url}/readyz", timeout=10).status_code != 503:
        assert time.monotonic() < deadline, "/readyz did not turn 503"
        time.sleep(0.2)
    started = time.perf_counter()
    down = httpx.post(f"{ts_gateway.url}/v1/predict", content=REQUESTS[0][1].body,
                      headers={"Content-Type": "application/json"}, timeout=3 * TIMEOUT_SECONDS)  # fmt: skip
    refused_in = time.perf_counter() - started
    print(f"\nTorchServe frontend killed: /readyz 503, predict {down.status_code} {down.json()['error']['code']} "
          f"in {refused_in * 1000:.0f} ms")  # fmt: skip
    assert down.status_code == 503 and down.json()["error"]["code"] == "backend_unavailable"
    assert refused_in < 2  # refused connections are answered at once
    torchserve.stop()  # the script and the orphaned workers; then TorchServe as its supervisor would restart it
    torchserve.start()
    torchserve.wait_ready()
    wait_until_ready(f"{ts_gateway.url}/readyz", 30)
    assert all_served(ts_gateway.url)
    assert ts_gateway.process.poll() is None  # the same gateway process throughout
