"""The pages routes on real gateway processes: diagram, pages, static files and the metrics summary."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from model.card import ModelCard
from model.network import Conv, ConvNet, Pool
from service.ui.diagram import card_svg, shape_text
from tests.cards import network_artifact
from tests.servers import ServerProcess, gateway_process

SVG = "{http://www.w3.org/2000/svg}"
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # a name, never fetched


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, dict(response.headers), response.read()


def get_json(url: str) -> Any:
    return json.loads(get(url)[2])


def served_card(server: ServerProcess) -> ModelCard:
    return ModelCard.model_validate(get_json(f"{server.url}/v1/models/digits"))


def predict_pixels(server: ServerProcess, count: int) -> None:
    digit = [[255.0 if 8 <= c <= 19 and 6 <= r <= 21 and (r == 6 or c == 19 - (r - 6) // 2) else 0.0
              for c in range(28)] for r in range(28)]  # fmt: skip
    body = json.dumps({"instances": [{"pixels": digit}], "preprocess": "none"}).encode()
    for _ in range(count):
        request = urllib.request.Request(
            f"{server.url}/v1/predict", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200


def predict_requests_in_metrics(server: ServerProcess) -> float:
    text = get(f"{server.url}/metrics")[2].decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "digits_http_requests_total" and sample.labels.get("route") == "/v1/predict"
    )


def stage_shapes(svg: bytes) -> dict[str, str]:
    root = ET.fromstring(svg)
    return {g.get("data-layer", ""): g.get("data-shape", "") for g in root.iter(f"{SVG}g") if g.get("data-layer")}


def test_diagram_route_draws_the_served_card(gateway: ServerProcess) -> None:
    status, headers, body = get(f"{gateway.url}/v1/models/digits/diagram.svg")
    card = served_card(gateway)
    assert status == 200 and headers["content-type"] == "image/svg+xml"
    assert body == card_svg(card)
    assert stage_shapes(body) == {
        "input": shape_text(card.input.shape),
        **{layer.name: shape_text(layer.output_shape) for layer in card.layers},
    }


@pytest.fixture(scope="module")
def small_network_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A gateway serving another, smaller ConvNet (untrained: only its shape matters here)."""
    tmp = tmp_path_factory.mktemp("small-network")
    network = ConvNet(layout=(Conv(8), Pool(), Conv(16), Pool(), Conv(16), Pool()), hidden=32)
    artifact = network_artifact(network, tmp / "small.pt", "0.0.1-small")
    with gateway_process(tmp, {"DIGITS_ARTIFACT": str(artifact)}) as server:
        yield server


def test_diagram_follows_the_served_architecture(gateway: ServerProcess, small_network_gateway: ServerProcess) -> None:
    small = get(f"{small_network_gateway.url}/v1/models/digits/diagram.svg")[2]
    shipped = get(f"{gateway.url}/v1/models/digits/diagram.svg")[2]
    assert small != shipped
    shapes = {"input": [1, 28, 28], "conv1": [8, 28, 28], "pool1": [8, 14, 14], "conv2": [16, 14, 14],
              "pool2": [16, 7, 7], "conv3": [16, 7, 7], "pool3": [16, 3, 3], "flatten": [144], "fc1": [32],
              "fc2": [10]}  # fmt: skip
    assert stage_shapes(small) == {name: shape_text(shape) for name, shape in shapes.items()}
    # The page's feature-map links follow too: the small network's stages are what predict returns.
    links = {a.get("href") for a in ET.fromstring(small).iter(f"{SVG}a")}
    assert links == {f"#features-{name}" for name in served_card(small_network_gateway).feature_layers}


class AssetCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


@pytest.mark.parametrize("page", ["/", "/dashboard"])
def test_pages_load_nothing_from_elsewhere(gateway: ServerProcess, page: str) -> None:
    status, headers, body = get(f"{gateway.url}{page}")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in headers["content-security-policy"]
    collector = AssetCollector()
    collector.feed(body.decode())
    assets = [url for url in collector.urls if url.startswith("/static/")]
    assert {url.rsplit(".", 1)[-1] for url in assets} == {"css", "js"}
    for url in collector.urls:
        assert url.startswith(("/", "#", "data:")), f"{page} refers to {url}"
    for url in assets:
        status, headers, text = get(f"{gateway.url}{url}")
        assert status == 200
        assert "://" not in text.decode().replace(SVG_NAMESPACE, ""), f"{url} names another host"


def test_static_files_stay_inside_their_folder(gateway: ServerProcess) -> None:
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/missing.js"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            get(f"{gateway.url}{path}")
        assert caught.value.code == 404


def test_summary_reads_the_metrics_registry(gateway: ServerProcess) -> None:
    predict_pixels(gateway, 20)
    deadline = time.monotonic() + 30
    summary: dict[str, Any] = {}
    while time.monotonic() < deadline:
        summary = get_json(f"{gateway.url}/v1/metrics/summary")
        busy = [p for p in summary["points"] if p["request_rate"] > 0 and p["latency_p95_seconds"] is not None]
        if busy and summary["totals"]["requests"] == predict_requests_in_metrics(gateway):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"the summary never caught up with /metrics: {summary}")
    assert summary["route"] == "/v1/predict"
    assert summary["totals"]["requests"] >= 20
    point = busy[-1]
    assert 0 < point["latency_p50_seconds"] <= point["latency_p95_seconds"] <= point["latency_p99_seconds"] < 30
    assert point["batch_size_mean"] >= 1
    assert sorted(p["time"] for p in summary["points"]) == [p["time"] for p in summary["points"]]
    assert len(summary["points"]) <= summary["history_seconds"] / summary["interval_seconds"]
