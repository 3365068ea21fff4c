"""Versions loaded, made stable, rolled back and unloaded three times over on a real two-worker gateway under wrk's
32 connections: not one failed request, and every answer from a version that was loaded when it was given."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from model.mnist import Split
from ops.local_servers import ServerProcess
from tests.lifecycle.helpers import (
    OTHER,
    STABLE,
    Keys,
    Load,
    bearer,
    make_keys,
    make_repository,
    pixel_bodies,
    repository_gateway,
    wait_for,
)

# Real two-worker gateways under load, several minutes in all: the slow tier.
pytestmark = pytest.mark.slow

CYCLES = 3
CONNECTIONS = 32


def wrk_script(path: Path, body: bytes, key: str) -> Path:
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [==[{body.decode()}]==]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return path


def on_every_worker(server: ServerProcess, keys: Keys, version: str, loaded: bool) -> bool:
    path = f"{server.url}/v2/models/digits/versions/{version}/ready"
    expected = 200 if loaded else 404
    return all(httpx.get(path, headers=bearer(keys.client)).status_code == expected for _ in range(12))


def admin(server: ServerProcess, keys: Keys, method: str, path: str, **kwargs: object) -> None:
    answer = httpx.request(method, server.url + path, headers=bearer(keys.admin), timeout=120, **kwargs)  # type: ignore[arg-type]
    assert answer.status_code == 200, answer.text


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk (Debian package wrk) is not installed")
def test_versions_swap_under_load_without_a_failed_request(tmp_path: Path, labelled_digits: Split) -> None:
    repository = make_repository(tmp_path / "repository")
    keys, keys_file = make_keys(tmp_path / "keys")
    bodies = pixel_bodies(labelled_digits.images)
    # The swaps are under test, not admission: with the machine's two cores shared by 32 connections, two workers,
    # a version loading and the test itself, a request may wait longer than the default 500 ms for the model.
    with repository_gateway(tmp_path, repository, keys_file, DIGITS_MAX_QUEUE_WAIT_MS="10000") as server:
        script = wrk_script(tmp_path / "predict.lua", bodies[0], keys.client)
        wrk = subprocess.Popen(
            ["wrk", "-t2", f"-c{CONNECTIONS}", "-d300s", "--timeout", "10s", "-s", str(script),
             f"{server.url}/v1/predict"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        windows: list[tuple[float, float]] = []  # when OTHER could answer: from its load to its last worker's unload
        with Load(server.url, bodies, clients=2, headers=bearer(keys.client)) as sampled:
            time.sleep(2)
            for _ in range(CYCLES):
                loading = time.monotonic()
                admin(server, keys, "POST", "/v2/repository/models/digits/load", params={"version": OTHER})
                wait_for(lambda: on_every_worker(server, keys, OTHER, True), what=f"{OTHER} on every worker")
                admin(server, keys, "PUT", "/v1/traffic", json={"stable": OTHER})
                time.sleep(2)
                admin(server, keys, "PUT", "/v1/traffic", json={"stable": STABLE})
                time.sleep(1)
                admin(server, keys, "POST", "/v2/repository/models/digits/unload", params={"version": OTHER})
                wait_for(lambda: on_every_worker(server, keys, OTHER, False), what=f"{OTHER} gone from every worker")
                windows.append((loading, time.monotonic()))
        wrk.send_signal(signal.SIGINT)
        report, _ = wrk.communicate(timeout=60)
        errors = [line for line in httpx.get(f"{server.url}/metrics").text.splitlines()
                  if line.startswith("digits_errors_total")]  # fmt: skip
    total = int(re.search(r"(\d+) requests in", report).group(1))  # type: ignore[union-attr]
    print(f"\nwrk, {CONNECTIONS} connections, {CYCLES} load/stable/rollback/unload cycles:\n{report}")
    assert total > 1000, report
    assert "Non-2xx" not in report and "Socket errors" not in report, (report, errors)
    assert sampled.answers and not sampled.failures(), sampled.failures()[:3]
    by_other = [answer for answer in sampled.answers if answer.version == OTHER]
    assert by_other, f"{OTHER} answered nothing while it was stable"
    assert {answer.version for answer in sampled.answers} == {STABLE, OTHER}
    for answer in by_other:
        assert any(start <= answer.sent and answer.received <= end for start, end in windows), answer
