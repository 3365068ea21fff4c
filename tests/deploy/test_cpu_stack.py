"""The README's `docker compose --profile cpu up -d`: the embedded gateway behind the load balancer, scraped by
Prometheus."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from tests.deploy.samples import predict_png, samples
from tests.deploy.stack import COMPOSE_FILE, DEBIAN_PROMETHEUS, NO_GRAFANA, ROOT, ComposeStack, inspect, readme_command

pytestmark = pytest.mark.docker

CPU_STACK = "docker compose --profile cpu up -d"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "digits.json"
IMAGES = ["digits-gateway:1.0.0", "digits-torchserve:1.0.0-cpu", "digits-loadbalancer:1.0.0",
          "digits-prometheus-debian:1.0.0"]  # fmt: skip


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    stack = ComposeStack("digits-test-cpu", [COMPOSE_FILE, DEBIAN_PROMETHEUS, NO_GRAFANA])
    try:
        stack.run_documented(readme_command(CPU_STACK))
        stack.wait_healthy("gateway-cpu")
        stack.wait_balanced(1)
        yield stack
    finally:
        stack.down()


def test_the_command_starts_the_cpu_stack_and_nothing_of_the_gpu_one(stack: ComposeStack) -> None:
    # Grafana too where it can be pulled: here deploy/compose/no-grafana.yml leaves it out.
    assert stack.started_services() == {"gateway-cpu", "loadbalancer", "prometheus"}


def test_the_gateway_is_healthy_through_its_own_healthcheck(stack: ComposeStack) -> None:
    (container,) = stack.containers("gateway-cpu")
    info = inspect(container)
    healthcheck = info["Config"]["Healthcheck"]["Test"]  # type: ignore[index]
    assert "/readyz" in " ".join(healthcheck)
    assert info["State"]["Health"]["Status"] == "healthy"  # type: ignore[index]


def test_a_png_upload_through_the_published_port_gets_the_right_label(stack: ComposeStack) -> None:
    for sample in samples()[:8]:
        body = predict_png(stack.url, sample, preprocess="auto")
        assert body["predictions"][0]["label"] == sample.label, sample.path.name  # type: ignore[index]


def test_grpc_through_the_load_balancer_gets_the_right_labels(stack: ComposeStack) -> None:
    stack.wait_balanced(1, backend="grpc-gateways")
    chosen = samples()[:8]
    files = triton_grpc.InferInput("image", [len(chosen)], "BYTES")
    files.set_data_from_numpy(np.array([sample.path.read_bytes() for sample in chosen], dtype=np.object_))
    with triton_grpc.InferenceServerClient(url=stack.grpc_address) as client:
        assert client.is_server_live() and client.is_model_ready("digits")
        result = client.infer("digits", [files], outputs=[triton_grpc.InferRequestedOutput("label")])
    assert result.as_numpy("label").tolist() == [sample.label for sample in chosen]


def test_prometheus_scrapes_the_gateway_and_the_dashboard_p99_has_data(stack: ComposeStack) -> None:
    p99 = next(
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        if panel.get("title") == "p99 latency"
        for target in panel["targets"]
    ).replace("$__rate_interval", "1m")
    stop = threading.Event()
    traffic = threading.Thread(target=_send_until, args=(stack.url, stop), daemon=True)
    traffic.start()
    try:
        # A scrape may still fail while the gateway warms up on a busy machine: wait for a successful one.
        up = _wait_for_result(stack.prometheus_url, 'up{job="gateway"} == 1', timeout=90)
        assert [float(sample["value"][1]) for sample in up] == [1.0]
        latency = _wait_for_result(stack.prometheus_url, p99, timeout=120)
        assert math.isfinite(float(latency[0]["value"][1])) and float(latency[0]["value"][1]) > 0
    finally:
        stop.set()
        traffic.join(30)


@pytest.mark.parametrize("image", IMAGES)
def test_no_image_runs_as_root(image: str) -> None:
    user = str(inspect(image)["Config"]["User"])  # type: ignore[index]
    assert user and user.split(":")[0] not in ("root", "0"), f"{image} runs as {user!r}"


def _send_until(url: str, stop: threading.Event) -> None:
    sample = samples()[0]
    while not stop.wait(0.1):
        predict_png(url, sample)


def _wait_for_result(prometheus: str, query: str, timeout: float) -> list[dict[str, object]]:
    """The query's first non-empty, non-NaN vector result, asking every 2 s."""
    deadline = time.monotonic() + timeout
    result: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        response = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10)
        result = response.json()["data"]["result"]
        if result and all(not math.isnan(float(item["value"][1])) for item in result):  # type: ignore[index]
            return result
        time.sleep(2)
    targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    errors = [(target["labels"].get("job"), target.get("lastError")) for target in targets]
    raise TimeoutError(f"no data for {query!r} after {timeout} s: {result}; targets: {errors}")
