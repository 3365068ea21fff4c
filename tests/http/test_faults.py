"""Faults on real gateway processes: a worker killed under load, and a thousand slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import psutil
import pytest

from loadtest.open_loop import LoadResult, open_loop
from loadtest.samples import load_samples
from loadtest.workloads import Workload, predict_requests
from tests.servers import gateway_process, uvicorn_workers

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 1000
HEADER_TIMEOUT_SECONDS = 3


def test_a_worker_killed_under_load_is_replaced(tmp_path: Path) -> None:
    tagged = [("pixels", r) for r in predict_requests(Workload.pixels, load_samples())]
    with gateway_process(tmp_path, {"DIGITS_WORKERS": "2"}) as server:
        workers = uvicorn_workers(server.pid)
        assert len(workers) == 2
        result: list[LoadResult] = []
        load = threading.Thread(
            target=lambda: result.append(asyncio.run(open_loop(server.url, tagged, rate=300, seconds=8,
                                                               timeout_seconds=10, max_connections=64))),
        )  # fmt: skip
        load.start()
        time.sleep(3)
        victim = min(workers)
        psutil.Process(victim).send_signal(signal.SIGKILL)
        load.join()
        deadline = time.monotonic() + 60
        while len(replaced := uvicorn_workers(server.pid) - {victim}) < 2:
            assert time.monotonic() < deadline, f"the killed worker was not replaced: {replaced}"
            time.sleep(0.5)
        outcome = result[0]
        lost = [o for o in outcome.outcomes if o.status is None]
        print(f"\nworker {victim} killed under {outcome.offered_rate:.0f} req/s (at most 64 connections): "
              f"{len(lost)} requests lost in flight ({sorted({o.failure for o in lost})}), "
              f"statuses {dict(outcome.statuses())}; replaced by {replaced - workers}")  # fmt: skip
        assert outcome.timeouts == 0
        assert len(lost) <= 64  # at most the connections the killed worker held
        # The surviving worker takes all the load meanwhile: what it cannot take in time it refuses, with Retry-After.
        assert set(outcome.statuses()) <= {200, 503, None}
        assert all(o.retry_after == "1" for o in outcome.outcomes if o.status == 503)
        for request in tagged[:20]:  # both workers serve again
            answer = httpx.post(server.url + request[1].path, content=request[1].body,
                                headers={"Content-Type": request[1].content_type}, timeout=10)  # fmt: skip
            assert answer.status_code == 200


def slow_client(host: str, port: int) -> socket.socket:
    """A connection that starts a request head and never finishes it."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    return sock


def test_a_thousand_slow_clients_do_not_starve_a_normal_one(tmp_path: Path) -> None:
    env = {"DIGITS_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_SECONDS)}
    with gateway_process(tmp_path, env) as server, contextlib.ExitStack() as stack:
        host, port = urlsplit(server.url).hostname or "", urlsplit(server.url).port or 0
        slow = [stack.enter_context(slow_client(host, port)) for _ in range(SLOW_CLIENTS)]
        latencies = []
        with httpx.Client(timeout=10) as client:
            started = time.monotonic()
            while time.monotonic() - started < HEADER_TIMEOUT_SECONDS - 0.5:  # while all of them hold on
                begun = time.perf_counter()
                answer = client.get(f"{server.url}/v1/models/digits")
                latencies.append(time.perf_counter() - begun)
                assert answer.status_code == 200
            for sock in slow:  # one more header line each: that does not buy them time
                with contextlib.suppress(OSError):
                    sock.sendall(b"X-Slow: 1\r\n")
            time.sleep(1.5)
        closed = sum(1 for sock in slow if _closed_by_server(sock))
        p99 = float(np.percentile(latencies, 99)) * 1000
        print(f"\n{SLOW_CLIENTS} slow clients: a normal client got {len(latencies)} answers, p50 "
              f"{np.percentile(latencies, 50) * 1000:.1f} ms, p99 {p99:.1f} ms; {closed} slow connections "
              f"closed by the server after the {HEADER_TIMEOUT_SECONDS} s header timeout")  # fmt: skip
        assert len(latencies) >= 10
        assert closed == SLOW_CLIENTS
        assert httpx.get(f"{server.url}/readyz").status_code == 200


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(2)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
