"""GET /v1/models/digits/layers/{name} and the card's calibration in GET /v1/models/digits, on real gateways."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from model.card import load_card
from ops.local_servers import ServerProcess
from service.core.schemas import LayerResponse
from tests.cards import uncalibrated_artifact
from tests.explanations import decoded
from tests.servers import gateway_process


def layer(gateway: ServerProcess, name: str, **params: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}/v1/models/digits/layers/{name}", params=params, timeout=30)


def test_conv_layers_have_the_cards_shapes_and_folded_batch_norm(gateway: ServerProcess) -> None:
    card = httpx.get(f"{gateway.url}/v1/models/digits").json()
    in_channels = 1
    for row in (row for row in card["layers"] if row["kind"] == "conv"):
        body = LayerResponse.model_validate_json(layer(gateway, row["name"]).content)
        out_channels = row["output_shape"][0]
        assert (body.stride, body.padding, body.kernel_size) == (row["stride"], row["padding"], row["kernel_size"])
        assert body.weight is not None and body.bias is not None and body.batch_norm is not None
        assert "folded" in body.batch_norm
        k = row["kernel_size"]
        assert decoded(body.weight.model_dump()).shape == (out_channels, in_channels, k, k)
        assert np.isfinite(decoded(body.bias.model_dump())).all()
        in_channels = out_channels


def test_kernels_as_a_png_grid(gateway: ServerProcess, artifact: Path) -> None:
    rows = {row.name: row for row in load_card(artifact).layers}
    out, inputs, k = rows["conv2"].output_shape[0], rows["conv1"].output_shape[0], rows["conv2"].kernel_size
    assert k is not None
    body = layer(gateway, "conv2", format="png").json()
    weight = body["weight"]
    assert weight["format"] == "png" and weight["shape"] == [out, inputs, k, k]
    assert weight["grid"] == {"rows": out, "cols": inputs, "tile_height": k, "tile_width": k, "gap": 1}
    assert decoded(weight).shape == (out * (k + 1) - 1, inputs * (k + 1) - 1)
    assert body["bias"]["format"] == "array"


def test_pooling_and_dense_layers_have_no_weights_here(gateway: ServerProcess, artifact: Path) -> None:
    pool = layer(gateway, "pool1").json()
    shape = next(row.output_shape for row in load_card(artifact).layers if row.name == "pool1")
    assert pool == {"name": "pool1", "kind": "maxpool", "kernel_size": 2, "stride": 2, "padding": 0,
                    "output_shape": shape}  # fmt: skip
    assert "weight" not in layer(gateway, "fc1").json()


@pytest.mark.parametrize(
    ("name", "params", "status", "code"),
    [("conv9", {}, 404, "unknown_layer"), ("conv1", {"format": "jpeg"}, 422, "invalid_request")],
)
def test_bad_layer_requests(gateway: ServerProcess, name: str, params: dict[str, str], status: int, code: str) -> None:
    response = layer(gateway, name, **params)
    assert response.status_code == status and response.json()["error"]["code"] == code


def test_calibration_as_the_card_carries_it(gateway: ServerProcess, artifact: Path) -> None:
    calibration = load_card(artifact).evaluation.calibration
    assert calibration is not None
    served = httpx.get(f"{gateway.url}/v1/models/digits").json()["evaluation"]["calibration"]
    assert served == calibration.model_dump(mode="json")


def test_calibration_is_null_for_a_card_without_it(artifact: Path, tmp_path: Path) -> None:
    copy, _ = uncalibrated_artifact(artifact, tmp_path)
    with gateway_process(tmp_path, {"DIGITS_ARTIFACT": str(copy)}) as server:
        assert httpx.get(f"{server.url}/v1/models/digits").json()["evaluation"]["calibration"] is None


def test_openapi_describes_explain_and_layers(gateway: ServerProcess) -> None:
    spec = httpx.get(f"{gateway.url}/openapi.json").json()
    schema = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]["explain"]["anyOf"][0]["items"]["enum"]) == {"input", "saliency", "preprocessing"}
    route = spec["paths"]["/v1/models/digits/layers/{name}"]["get"]
    assert {"200", "404", "422"} <= set(route["responses"])
    for reference in _references(spec):
        name = reference.removeprefix("#/components/schemas/")
        assert name in spec["components"]["schemas"], reference


def _references(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _references(value)]
    return []
