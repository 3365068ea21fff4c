"""``digits serve --backend torchserve`` and ``digits torchserve`` as real processes, started and stopped."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from ops.local_servers import free_port, wait_until_ready
from ops.settings import OpsSettings
from ops.torchserve.commands import launcher_config
from ops.torchserve.launcher import TorchServeConfig
from service.core.settings import Settings, TorchServeSettings
from tests.servers import gateway_process

PIXELS = {"instances": [{"pixels": [[0] * 28] * 10 + [[0] * 13 + [255] * 2 + [0] * 13] * 8 + [[0] * 28] * 10}]}


def torchserve_env(log_dir: Path) -> dict[str, str]:
    inference, management, metrics = free_port(), free_port(), free_port()
    return {
        "DIGITS_TORCHSERVE_URL": f"http://127.0.0.1:{inference}",
        "DIGITS_TORCHSERVE_MANAGEMENT_URL": f"http://127.0.0.1:{management}",
        "DIGITS_TORCHSERVE_METRICS_URL": f"http://127.0.0.1:{metrics}",
        "DIGITS_TORCHSERVE_LOG_DIR": str(log_dir),
        "DIGITS_TORCHSERVE_WORKERS": "1",
    }


@contextmanager
def digits_command(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    cwd.mkdir(parents=True, exist_ok=True)
    with (cwd.parent / f"{args[0]}.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "digits_cli.main", *args], cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=log
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def torchserve_processes(log_dir: Path) -> list[psutil.Process]:
    """Live processes started for this TorchServe (they carry its LOG_LOCATION)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get("LOG_LOCATION") == str(log_dir):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def refused(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        return sock.connect_ex((host, int(port))) != 0


def test_serve_with_torchserve_starts_both_and_sigterm_stops_both(tmp_path: Path) -> None:
    logs, cwd = tmp_path / "torchserve-logs", tmp_path / "cwd"
    port = free_port()
    env = {**torchserve_env(logs), "DIGITS_HOST": "127.0.0.1", "DIGITS_PORT": str(port)}
    with digits_command(["serve", "--backend", "torchserve"], env, cwd) as process:
        gateway = f"http://127.0.0.1:{port}"
        wait_until_ready(f"{gateway}/readyz", timeout=240, process=process)
        assert httpx.get(f"{gateway}/readyz").json()["backend"] == "torchserve"
        answer = httpx.post(f"{gateway}/v1/predict", json={**PIXELS, "preprocess": "none"}, timeout=30)
        assert answer.status_code == 200 and len(answer.json()["predictions"][0]["probabilities"]) == 10
        metrics = httpx.get(f"{env['DIGITS_TORCHSERVE_METRICS_URL']}/metrics").text
        assert "ts_inference_requests_total" in metrics
        assert torchserve_processes(logs.resolve())

        process.send_signal(signal.SIGTERM)
        assert process.wait(90) == 0
    assert torchserve_processes(logs.resolve()) == []
    assert refused(env["DIGITS_TORCHSERVE_URL"]) and refused(gateway)
    assert list(cwd.iterdir()) == []  # logs went to DIGITS_TORCHSERVE_LOG_DIR, temporary files are gone
    assert (logs / "ts_log.log").is_file()


def test_torchserve_command_and_a_gateway_are_the_documented_pair(tmp_path: Path) -> None:
    logs = tmp_path / "torchserve-logs"
    env = torchserve_env(logs)
    with digits_command(["torchserve"], env, tmp_path / "cwd") as torchserve:
        wait_until_ready(f"{env['DIGITS_TORCHSERVE_URL']}/ping", timeout=240, process=torchserve)
        with gateway_process(tmp_path, {**env, "DIGITS_BACKEND": "torchserve"}) as gateway:
            answer = httpx.post(f"{gateway.url}/v1/predict", json=PIXELS, timeout=30)
            assert answer.status_code == 200, answer.text
        torchserve.send_signal(signal.SIGINT)
        assert torchserve.wait(90) == 0
    assert torchserve_processes(logs.resolve()) == []


def test_launcher_config_follows_the_gateways_settings(tmp_path: Path) -> None:
    mar = tmp_path / "digits.mar"
    mar.write_bytes(b"")
    urls = {"torchserve_url": "http://0.0.0.0:9080", "torchserve_management_url": "http://0.0.0.0:9081"}
    settings = Settings(torchserve=TorchServeSettings(**urls))
    ops = OpsSettings(torchserve_metrics_url="http://0.0.0.0:9082", torchserve_workers=3, torchserve_log_dir=tmp_path)
    config = launcher_config(settings, ops, mar)
    assert config == TorchServeConfig(
        mar_path=mar,
        log_dir=tmp_path,
        host="0.0.0.0",
        inference_port=9080,
        management_port=9081,
        metrics_port=9082,
        workers=3,
        start_timeout_seconds=ops.torchserve_start_timeout_seconds,
    )


def test_launcher_config_refuses_urls_on_different_hosts(tmp_path: Path) -> None:
    mar = tmp_path / "digits.mar"
    mar.write_bytes(b"")
    settings = Settings(torchserve=TorchServeSettings(torchserve_url="http://torchserve:8080"))
    with pytest.raises(ValueError, match="one host"):
        launcher_config(settings, OpsSettings(), mar)
