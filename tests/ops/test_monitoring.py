"""`digits monitor` for real: gateway + TorchServe + the deploy Prometheus on loopback, driven with traffic.

Then: the gateway and TorchServe targets are up, the alert rules are loaded and evaluated, and every query
of the Grafana dashboard returns data from that Prometheus (except those listed in NO_DATA_HERE, with the
reason). A second run with the embedded backend (the no-GPU variant) checks the clean shutdown.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from model.card import load_card
from model.evaluate import predict_logits
from model.mnist import load_test_split
from model.settings import DataSettings
from ops.local_servers import ServerProcess, free_port, wait_until_ready
from service.core.api_keys import new_key
from tests.servers import REPO

DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "digits.json"
RULE_FILES = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))

# Dashboard queries that cannot return data on this machine, and why.
NO_DATA_HERE = {
    'max by (DeviceId) (GPUUtilization{job="torchserve"})': "no GPU here: TorchServe exports GPU gauges only "
    "when nvidia-smi finds a GPU",
    'max by (DeviceId) (GPUMemoryUsed{job="torchserve"})': "no GPU here (as above)",
    'max by (DeviceId) (GPUMemoryUtilization{job="torchserve"})': "no GPU here (as above)",
}
LIFECYCLE_ROW = "Model versions and rollout"
# Grafana's variables, as Grafana would expand them for a dashboard opened right after the traffic.
RATE_INTERVAL = "20s"
RANGE = "5m"
ROUNDS = 5  # of traffic, one second apart: rates then span several 1 s scrapes
VALID_PER_ROUND = 8
INVALID_PER_ROUND = 2
# The stack's keys: the load's, with a quota it stays under (only a key with a quota has its images counted), and a
# client's whose burst is answered 429, so that the quota panels have data.
LOAD_QUOTA = "rps=1000 ips=10000"
BURST_QUOTA_RPS = 2
BURST = 10


@dataclass
class Stack:
    monitor: ServerProcess  # the digits monitor command
    gateway_url: str
    prometheus_url: str
    torchserve_inference_port: int | None = None
    load_key: str | None = None
    burst_key: str | None = None

    def stop(self) -> int | None:
        return self.monitor.stop(signal.SIGTERM, timeout_s=90)


def start_monitor(tmp: Path, *extra: str, env: dict[str, str] | None = None) -> Stack:
    gateway_port, prometheus_port = free_port(), free_port()
    command = [sys.executable, "-m", "digits_cli.main", "monitor", "--gateway-port", str(gateway_port)]
    command += ["--prometheus-port", str(prometheus_port), "--scrape-interval", "1s", *extra]
    monitor = ServerProcess("monitor", command, env or {}, tmp, cwd=REPO)
    stack = Stack(monitor, f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{prometheus_port}")
    monitor.start(f"{stack.prometheus_url}/-/ready", timeout_s=300)
    try:
        wait_until_ready(f"{stack.gateway_url}/readyz", 30, monitor.process)
    except BaseException:
        stack.stop()
        raise AssertionError(monitor.log()[-4000:]) from None
    return stack


def query(stack: Stack, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
    url = f"{stack.prometheus_url}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def post(url: str, body: bytes, key: str | None = None) -> int:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json", **bearer(key)})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def drive_traffic(gateway_url: str, key: str | None = None) -> tuple[int, dict[int, int]]:
    """Valid predictions of 1-4 images (some with feature maps) and two kinds of invalid request, sent with ``key``."""
    rng = np.random.default_rng(0)
    predict = f"{gateway_url}/v1/predict"
    statuses: dict[int, int] = {}
    sent = 0
    with ThreadPoolExecutor(4) as pool:
        for round_ in range(ROUNDS):
            bodies = []
            for i in range(VALID_PER_ROUND):
                images = rng.integers(0, 256, size=(1 + i % 4, 28, 28)).tolist()
                body: dict[str, Any] = {"instances": [{"pixels": image} for image in images], "preprocess": "none"}
                if i == 0:
                    body["features"] = ["all"]
                bodies.append(json.dumps(body).encode())
            bodies += [b'{"instances": [{"pixels": [[1, 2, 3]]}]}', b"{not json"][:INVALID_PER_ROUND]
            for status in pool.map(lambda body: post(predict, body, key), bodies):
                statuses[status] = statuses.get(status, 0) + 1
            sent += len(bodies)
            card = urllib.request.Request(f"{gateway_url}/v1/models/digits", headers=bearer(key))
            urllib.request.urlopen(card, timeout=10).read()
            if round_ < ROUNDS - 1:
                time.sleep(1.0)
    return sent, statuses


def burst(gateway_url: str, key: str) -> dict[int, int]:
    """``BURST`` requests one after another, faster than the key's quota lets through."""
    body = json.dumps({"instances": [{"pixels": [[0] * 28] * 28}], "preprocess": "none"}).encode()
    statuses: dict[int, int] = {}
    for _ in range(BURST):
        status = post(f"{gateway_url}/v1/predict", body, key)
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def dashboard_queries(row: str | None = None) -> list[tuple[str, str]]:
    """The queries of the panels under ``row``, or with None, of every row but LIFECYCLE_ROW (whose series need
    several versions and a rollout: the lifecycle stack below)."""
    queries, current = [], ""
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
        elif current == row or (row is None and current != LIFECYCLE_ROW):
            queries += [(panel["title"], target["expr"]) for target in panel["targets"]]
    return queries


def grafana_expand(expr: str) -> str:
    return expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", RANGE)


def wait_until_scraped(stack: Stack, jobs: set[str], timeout: float = 30) -> None:
    """Prometheus applies new targets every 5 s: traffic sent before the first scrape would be seen only once."""
    deadline = time.monotonic() + timeout
    while {sample["metric"]["job"] for sample in query(stack, "up == 1")} != jobs:
        assert time.monotonic() < deadline, f"Prometheus did not scrape {sorted(jobs)} within {timeout:.0f} s"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`digits monitor --backend torchserve`: TorchServe, the gateway in front of it with API keys, Prometheus."""
    tmp = tmp_path_factory.mktemp("monitor")
    ports = {name: free_port() for name in ("inference", "management", "metrics")}
    load_key, load_line = new_key("load")
    burst_key, burst_line = new_key("burst")
    (tmp / "keys").write_text(f"{load_line} {LOAD_QUOTA}\n{burst_line} rps={BURST_QUOTA_RPS}\n")
    env = {
        "DIGITS_API_KEYS_FILE": str(tmp / "keys"),
        "DIGITS_TORCHSERVE_URL": f"http://127.0.0.1:{ports['inference']}",
        "DIGITS_TORCHSERVE_MANAGEMENT_URL": f"http://127.0.0.1:{ports['management']}",
        "DIGITS_TORCHSERVE_METRICS_URL": f"http://127.0.0.1:{ports['metrics']}",
        "DIGITS_TORCHSERVE_WORKERS": "1",
        "DIGITS_TORCHSERVE_LOG_DIR": str(tmp / "torchserve-logs"),
    }
    running = start_monitor(tmp, "--backend", "torchserve", env=env)
    running.torchserve_inference_port = ports["inference"]
    running.load_key, running.burst_key = load_key, burst_key
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> float:
    """Drives the traffic and a burst over a key's quota, waits until Prometheus has scraped all of it; returns that
    moment (to query at)."""
    assert stack.load_key is not None and stack.burst_key is not None
    wait_until_scraped(stack, {"gateway", "torchserve"})
    sent, statuses = drive_traffic(stack.gateway_url, stack.load_key)
    assert statuses.get(200) == ROUNDS * VALID_PER_ROUND, statuses
    refused = 0
    for _ in range(2):  # a scrape apart: the refusals' rate is above 0, not only their first sample
        statuses = burst(stack.gateway_url, stack.burst_key)
        assert statuses.get(429) and statuses.get(200), statuses
        refused += statuses[429]
        sent += statuses[200]  # a refusal comes before routing: it counts under no route
        time.sleep(1.5)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counted = query(stack, 'sum(digits_http_requests_total{route="/v1/predict"})')
        served = query(stack, "sum(ts_inference_requests_total)")
        over_quota = query(stack, "sum(digits_quota_refusals_total)")
        if (counted and float(counted[0]["value"][1]) >= sent and served and float(served[0]["value"][1]) > 0
                and over_quota and float(over_quota[0]["value"][1]) >= refused):  # fmt: skip
            return time.time()
        time.sleep(0.5)
    raise AssertionError(f"Prometheus did not see the {sent} requests within 30 s")


@pytest.mark.torchserve
def test_the_gateway_and_torchserve_targets_are_up(stack: Stack, traffic: float) -> None:
    up = {sample["metric"]["job"]: sample["value"][1] for sample in query(stack, "up")}
    assert up == {"gateway": "1", "torchserve": "1"}


@pytest.mark.torchserve
def test_the_alert_rules_are_loaded_and_evaluated(stack: Stack, traffic: float) -> None:
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules", timeout=10) as response:
        groups = json.loads(response.read())["data"]["groups"]
    loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
    expected = {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert set(loaded) == expected
    for name, rule in loaded.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"
        assert not rule["lastEvaluation"].startswith("0001"), f"{name} was never evaluated"
        assert rule["state"] != "firing", f"{name} fires on a healthy stack"


@pytest.mark.torchserve
def test_the_torchserve_series_the_rules_and_dashboard_use_exist(stack: Stack, traffic: float) -> None:
    names = {sample["metric"]["__name__"] for sample in query(stack, 'count by (__name__) ({job="torchserve"})')}
    assert {
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
        "ts_inference_requests_total",
    } <= names


@pytest.mark.torchserve
@pytest.mark.parametrize(("title", "expr"), dashboard_queries(), ids=[title for title, _ in dashboard_queries()])
def test_every_dashboard_query_returns_data(stack: Stack, traffic: float, title: str, expr: str) -> None:
    result = query(stack, grafana_expand(expr), at=traffic)
    if expr in NO_DATA_HERE:
        assert result == [], f"{title} has data after all: drop it from NO_DATA_HERE"
        pytest.skip(NO_DATA_HERE[expr])
    values = [float(sample["value"][1]) for sample in result]
    assert values, f"{title}: no series for {expr}"
    assert any(math.isfinite(value) for value in values), f"{title}: only NaN for {expr}"


def test_the_reasons_for_missing_data_name_real_queries() -> None:
    assert set(NO_DATA_HERE) <= {expr for _, expr in dashboard_queries()}


@pytest.mark.torchserve
def test_the_compose_torchserve_healthcheck_asks_a_real_torchserve(stack: Stack) -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    test = compose["services"]["torchserve"]["healthcheck"]["test"]
    command = [part.replace(":8080/", f":{stack.torchserve_inference_port}/") for part in test[2:]]
    assert subprocess.run([sys.executable, *command], env={}, timeout=30).returncode == 0
    closed = [part.replace(":8080/", f":{free_port()}/") for part in test[2:]]
    assert subprocess.run([sys.executable, *closed], env={}, capture_output=True, timeout=30).returncode != 0


def refuses(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2)
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


@pytest.mark.slow
def test_the_embedded_variant_runs_without_torchserve_and_stops_cleanly(tmp_path: Path) -> None:
    stack = start_monitor(tmp_path, "--backend", "embedded")
    try:
        wait_until_scraped(stack, {"gateway"})
        assert query(stack, 'up{job="torchserve"}') == [], "no TorchServe target without TorchServe"
        assert query(stack, "digits_model_info")[0]["metric"]["backend"] == "embedded"
    finally:
        code = stack.stop()
    assert code == 0, stack.monitor.log()[-4000:]
    assert refuses(f"{stack.gateway_url}/healthz") and refuses(f"{stack.prometheus_url}/-/ready")


# The lifecycle stack: the shipped repository (2.1.0 stable) and an admin key. A rollout of 2.0.0 is sent the MNIST
# test digits the two networks label differently (24 of 10,000), so that its agreement gate rolls it back.
LIFECYCLE_STABLE, LIFECYCLE_CANDIDATE = "2.1.0", "2.0.0"


@dataclass
class Lifecycle:
    stack: Stack
    at: float  # when Prometheus had scraped it all


def admin_call(stack: Stack, key: str, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    request = urllib.request.Request(f"{stack.gateway_url}{path}", data, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def predict(stack: Stack, key: str, images: Iterable[np.ndarray]) -> None:
    for image in images:
        body = {"instances": [{"pixels": image.tolist()}], "preprocess": "none"}
        status, answer = admin_call(stack, key, "POST", "/v1/predict", body)
        assert status == 200, answer


def disagreeing_digits() -> list[np.ndarray]:
    """The MNIST test digits that the stable and the candidate version label differently."""
    split = load_test_split(DataSettings().data_dir)
    labels = []
    for version in (LIFECYCLE_STABLE, LIFECYCLE_CANDIDATE):
        artifact = REPO / "model" / "versions" / version / "digits.pt"
        module = torch.jit.load(str(artifact), map_location="cpu").eval()
        labels.append(predict_logits(module, split.images, load_card(artifact).input).argmax(dim=1).numpy())
    return list(split.images[labels[0] != labels[1]])


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lifecycle]:
    """Canary and shadow traffic by hand, a version refused at load, then a rollout rolled back by its agreement
    gate (the default settings' gates)."""
    tmp = tmp_path_factory.mktemp("lifecycle")
    key, line = new_key("operator", "admin")
    (tmp / "keys").write_text(line + "\n")
    env = {
        "DIGITS_MODEL_REPOSITORY": str(REPO / "model" / "versions"),
        "DIGITS_MODEL_VERSION": LIFECYCLE_STABLE,
        "DIGITS_STATE_DIR": str(tmp / "state"),
        "DIGITS_API_KEYS_FILE": str(tmp / "keys"),
        "DIGITS_ROLLOUT_GATE_MIN_SAMPLES": "10",
        "DIGITS_REPOSITORY_POLL_SECONDS": "0.2",
    }
    stack = start_monitor(tmp, "--backend", "embedded", env=env)
    try:
        wait_until_scraped(stack, {"gateway"})
        rng, disagreeing = np.random.default_rng(0), disagreeing_digits()
        assert disagreeing
        policy = {"stable": LIFECYCLE_STABLE, "candidate": LIFECYCLE_CANDIDATE, "weight": 0.5, "shadow": 1.0}
        assert admin_call(stack, key, "PUT", "/v1/traffic", policy)[0] == 200
        for _ in range(ROUNDS):
            predict(stack, key, rng.integers(0, 256, size=(VALID_PER_ROUND, 28, 28)))
            time.sleep(1.0)
        status, refused = admin_call(stack, key, "POST", "/v2/repository/models/digits/load?version=9.9.9")
        assert status >= 400, refused
        status, started = admin_call(stack, key, "POST", "/v1/rollout/start",
                                     {"candidate": LIFECYCLE_CANDIDATE, "steps": ["shadow", "100"]})  # fmt: skip
        assert status == 202, started
        deadline = time.monotonic() + 60
        while (report := admin_call(stack, key, "GET", "/v1/rollout")[1])["rollout"]["status"] == "running":
            assert time.monotonic() < deadline, report
            predict(stack, key, disagreeing)
        assert report["rollout"]["status"] == "rolled_back" and "agreement" in report["rollout"]["reason"], report
        deadline = time.monotonic() + 30
        while not query(stack, 'digits_rollouts_total{result="rolled_back", reason="agreement"}'):
            assert time.monotonic() < deadline, "Prometheus did not see the rollback within 30 s"
            time.sleep(0.5)
        time.sleep(2.0)  # a scrape or two after it: the gauges' last values
        yield Lifecycle(stack, time.time())
    finally:
        stack.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("title", "expr"), dashboard_queries(LIFECYCLE_ROW), ids=[title for title, _ in dashboard_queries(LIFECYCLE_ROW)]
)
def test_every_model_versions_query_returns_data(lifecycle: Lifecycle, title: str, expr: str) -> None:
    result = query(lifecycle.stack, grafana_expand(expr), at=lifecycle.at)
    values = [float(sample["value"][1]) for sample in result]
    assert values, f"{title}: no series for {expr}"
    assert any(math.isfinite(value) for value in values), f"{title}: only NaN for {expr}"


def test_the_lifecycle_row_is_there() -> None:
    assert len(dashboard_queries(LIFECYCLE_ROW)) >= 10


@pytest.mark.slow
def test_a_rollback_by_a_gate_and_a_refused_version_raise_their_alerts(lifecycle: Lifecycle) -> None:
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(f"{lifecycle.stack.prometheus_url}/api/v1/alerts", timeout=10) as response:
            alerts = {(a["labels"]["alertname"], a["labels"].get("reason") or a["labels"].get("code"))
                      for a in json.loads(response.read())["data"]["alerts"]}  # fmt: skip
        wanted = {("DigitsRolloutRolledBack", "agreement"), ("DigitsModelVersionRefused", "unknown_version")}
        if wanted <= alerts:
            return
        assert time.monotonic() < deadline, f"pending or firing: {sorted(alerts)}"
        time.sleep(0.5)
