"""A real ``digits serve`` process: readiness, metrics path, streaming limits, graceful shutdown, workers."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import numpy as np
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.core.settings import (
    AuthSettings,
    BatchingSettings,
    LimitsSettings,
    ModelSettings,
    ServerSettings,
    Settings,
    TelemetrySettings,
    TorchServeSettings,
)
from tests.servers import ServerProcess, gateway_process


def pixels_body(seed: int = 0) -> bytes:
    """A predict request for one upright stroke, a 1, whose length varies with ``seed``."""
    digit = np.zeros((28, 28), np.uint8)
    digit[4 + seed % 5 : 24, 13:16] = 255
    return json.dumps({"instances": [{"pixels": digit.tolist()}], "preprocess": "none"}).encode()


def post_pixels(url: str, seed: int) -> tuple[int, int | None]:
    body = pixels_body(seed)
    request = urllib.request.Request(f"{url}/v1/predict", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())["predictions"][0]["label"]
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_ready_and_metrics_at_exact_path(gateway: ServerProcess) -> None:
    with urllib.request.urlopen(f"{gateway.url}/readyz") as response:
        assert json.loads(response.read())["status"] == "ready"
    connection = http.client.HTTPConnection(*urlsplit(gateway.url).netloc.split(":"))
    connection.request("GET", "/metrics")
    response = connection.getresponse()
    assert response.status == 200  # served at /metrics itself, no redirect
    assert b"digits_model_info" in response.read()


def test_chunked_body_over_the_limit_is_cut_off_while_reading(tmp_path: Path) -> None:
    with gateway_process(tmp_path, {"DIGITS_MAX_BODY_BYTES": "65536"}) as server:
        host, port = urlsplit(server.url).netloc.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b" " * 16384
            try:
                for _ in range(64):  # 1 MiB announced by nothing but the stream itself
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                pass
            reply = _read_reply(sock)
        assert reply.startswith(b"HTTP/1.1 413")
        assert b'"code":"body_too_large"' in reply


def _read_reply(sock: socket.socket) -> bytes:
    """Headers and the whole Content-Length body, however the server splits them into packets."""
    reply = b""
    while True:
        head, separator, body = reply.partition(b"\r\n\r\n")
        if separator:
            length = next(
                (
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                ),
                0,
            )
            if len(body) >= length:
                return reply
        data = sock.recv(65536)
        if not data:
            return reply
        reply += data


def _connect(url: str, timeout: float) -> socket.socket:
    host, port = urlsplit(url).netloc.split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def _pixels_request(expect_continue: bool = False) -> tuple[bytes, bytes]:
    body = pixels_body()
    expect = b"Expect: 100-continue\r\n" if expect_continue else b""
    head = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n"
    return head % (expect, len(body)), body


def test_expect_100_continue_is_answered_before_the_body_is_sent(gateway: ServerProcess) -> None:
    """The interim answer is a write of its own, with no body to go out with: it must not wait for one."""
    head, body = _pixels_request(expect_continue=True)
    with _connect(gateway.url, timeout=5) as sock:
        sock.sendall(head)
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, answer = _status_and_body(sock.makefile("rb"))
    assert status == 200
    assert json.loads(answer)["predictions"][0]["label"] == 1


def test_pipelined_requests_are_answered_whole_and_in_order(gateway: ServerProcess) -> None:
    head, body = _pixels_request()
    bad = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"
    with _connect(gateway.url, timeout=10) as sock:
        sock.sendall(head + body + bad + head + body)
        replies = sock.makefile("rb")
        statuses = [_status_and_body(replies)[0] for _ in range(3)]
    assert statuses == [200, 422, 200]


def _status_and_body(replies: BinaryIO) -> tuple[int, bytes]:
    """The next reply on a connection: its status and its Content-Length body."""
    status = int(replies.readline().split(b" ")[1])
    length = 0
    while (line := replies.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, replies.read(length)


def test_sigterm_finishes_every_accepted_request(tmp_path: Path) -> None:
    env = {"DIGITS_MAX_BATCH_WAIT_MS": "300", "DIGITS_MAX_BATCH_SIZE": "64"}
    with gateway_process(tmp_path, env) as server:
        with ThreadPoolExecutor(max_workers=24) as pool:
            futures = [pool.submit(post_pixels, server.url, seed) for seed in range(24)]
            time.sleep(0.15)  # requests are accepted and waiting for their batch to fill
            server.process.send_signal(signal.SIGTERM)
            results = [f.result() for f in futures]
        # uvicorn re-raises the signal after its graceful shutdown: exit by SIGTERM is the clean end
        assert server.process.wait(30) in (0, -signal.SIGTERM)
        log = server.log()
    assert [status for status, _ in results] == [200] * 24, log
    assert all(label == 1 for _, label in results)
    assert "Shutting down" in log


def _counted(url: str, name: str, label: str, value: str) -> float:
    """The sum of ``name``'s samples whose ``label`` is ``value``, as a scrape of ``url`` reports them."""
    with urllib.request.urlopen(f"{url}/metrics") as response:
        families = text_string_to_metric_families(response.read().decode())
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == name and sample.labels[label] == value
    )


def _predict_requests_counted(url: str) -> float:
    return _counted(url, "digits_http_requests_total", "route", "/v1/predict")


def _version_answers_counted(url: str) -> float:
    return _counted(url, "digits_version_requests_total", "outcome", "ok")


def test_workers_serve_one_port_and_report_one_set_of_metrics(tmp_path: Path) -> None:
    with gateway_process(tmp_path, {"DIGITS_WORKERS": "2"}, ready_timeout=120) as server:
        workers = psutil.Process(server.process.pid).children()
        assert len(workers) >= 2, server.log()  # uvicorn's supervisor, then one process per worker
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda seed: post_pixels(server.url, seed), range(40)))
        assert [status for status, _ in results] == [200] * 40
        assert all(label == 1 for _, label in results)
        # whichever worker answers the scrape, it reports what all of them served
        assert {_predict_requests_counted(server.url) for _ in range(6)} == {40.0}
        # the request path's tallied observations too, once each worker's flush (every second) has run
        deadline = time.monotonic() + 10
        while _version_answers_counted(server.url) != 40.0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert {_version_answers_counted(server.url) for _ in range(6)} == {40.0}
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert "Stopping parent process" in server.log()


def test_exported_settings_rebuild_the_same_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    custom = Settings(
        server=ServerSettings(port=9123, workers=3),
        batching=BatchingSettings(max_batch_size=32),
        limits=LimitsSettings(max_images_per_request=16),
        model=ModelSettings(artifact=Path("/srv/model.pt")),
        auth=AuthSettings(cors_origins=["https://a.example"]),
        telemetry=TelemetrySettings(dashboard_route="/healthz"),
        torchserve=TorchServeSettings(torchserve_timeout_seconds=2.5),
    )
    for name, value in custom.environment().items():
        monkeypatch.setenv(name, value)
    assert Settings() == custom
