"""The Open Inference Protocol through the real app (in-process HTTP): the same limits and checks as /v1, every
input form, the routes in the metrics and the OpenAPI document. Every 200 inference answer is validated against
the published InferenceResponse schema (conftest)."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from model.card import load_card
from model.mnist import Split
from model.settings import DEFAULT_ARTIFACT
from tests.core.test_decoding import png_header_only
from tests.uploads import encode

CARD = load_card(DEFAULT_ARTIFACT)
VERSION = CARD.version
SHAPES = {layer.name: layer.output_shape for layer in CARD.layers}

INFER = "/v2/models/digits/infer"
HEADER_LENGTH = "Inference-Header-Content-Length"


def tensor(name: str, datatype: str, shape: list[int], data: Any) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def pixels_tensor(images: np.ndarray, datatype: str = "FP32") -> dict[str, Any]:
    return tensor("pixels", datatype, list(images.shape), images.ravel().tolist())


def infer(client: TestClient, body: dict[str, Any], path: str = INFER) -> httpx.Response:
    return client.post(path, content=orjson.dumps(body), headers={"Content-Type": "application/json"})


def infer_binary(client: TestClient, header: dict[str, Any], binary: bytes) -> httpx.Response:
    encoded = orjson.dumps(header)
    return client.post(INFER, content=encoded + binary, headers={HEADER_LENGTH: str(len(encoded))})


def outputs_of(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {output["name"]: output for output in response.json()["outputs"]}


def error_of(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert set(body) <= {"error", "code", "index"} and body["error"].startswith(body["code"] + ": ")
    return response.status_code, body["code"]


def test_json_pixels_nested_or_flat_give_v1s_labels(client: TestClient, digits: Split) -> None:
    flat = outputs_of(infer(client, {"inputs": [pixels_tensor(digits.images.astype(np.float32))]}))
    nested = tensor("pixels", "FP32", [8, 28, 28], digits.images.tolist())
    assert outputs_of(infer(client, {"inputs": [nested]})) == flat
    assert flat["label"]["data"] == digits.labels.tolist()
    v1 = client.post("/v1/predict", json={"instances": [{"pixels": d.tolist()} for d in digits.images],
                                          "preprocess": "none"}).json()  # fmt: skip
    np.testing.assert_array_equal(
        np.array(flat["probabilities"]["data"], np.float32).reshape(8, 10),
        np.array([p["probabilities"] for p in v1["predictions"]], np.float32),
    )


def test_binary_uint8_with_a_channel_axis_and_binary_outputs(client: TestClient, digits: Split) -> None:
    images = digits.images.astype(np.uint8).reshape(8, 1, 28, 28)
    header = {
        "inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [8, 1, 28, 28],
                    "parameters": {"binary_data_size": images.nbytes}}],
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"binary_data": False}}],
    }  # fmt: skip
    response = infer_binary(client, header, images.tobytes())
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers[HEADER_LENGTH])
    described = orjson.loads(response.content[:length])["outputs"]
    assert [o["name"] for o in described] == ["label", "probabilities"]
    assert described[0]["parameters"] == {"binary_data_size": 64} and "data" not in described[0]
    labels = np.frombuffer(response.content[length:], "<i8")
    assert labels.tolist() == digits.labels.tolist()
    assert len(described[1]["data"]) == 80


def test_json_image_input_is_base64_files_preprocessed_like_v1(client: TestClient, digits: Split) -> None:
    files = [base64.b64encode(encode(255 - d)).decode() for d in digits.images]  # dark ink on white paper
    outputs = outputs_of(infer(client, {"inputs": [tensor("image", "BYTES", [8], files)]}))
    v1 = client.post("/v1/predict", json={"instances": [{"image": f} for f in files]}).json()
    assert outputs["label"]["data"] == [p["label"] for p in v1["predictions"]]


def test_binary_image_input_is_length_prefixed_files(client: TestClient, digits: Split) -> None:
    files = [encode(d) for d in digits.images[:2]]
    binary = b"".join(len(f).to_bytes(4, "little") + f for f in files)
    header = {"inputs": [{"name": "image", "datatype": "BYTES", "shape": [2],
                          "parameters": {"binary_data_size": len(binary)}}]}  # fmt: skip
    assert outputs_of(infer_binary(client, header, binary))["label"]["data"] == digits.labels[:2].tolist()


def test_versioned_routes_and_request_id(client: TestClient, digits: Split) -> None:
    body = {"id": "abc", "inputs": [pixels_tensor(digits.images[:1].astype(np.float32))]}
    response = infer(client, body, f"/v2/models/digits/versions/{VERSION}/infer")
    assert response.json()["id"] == "abc" and response.json()["model_version"] == VERSION
    assert client.get(f"/v2/models/digits/versions/{VERSION}").json()["name"] == "digits"
    assert client.get(f"/v2/models/digits/versions/{VERSION}/ready").json() == {"name": "digits", "ready": True}
    assert error_of(infer(client, body, "/v2/models/digits/versions/2/infer")) == (404, "unknown_model")
    assert error_of(infer(client, body, "/v2/models/mnist/infer")) == (404, "unknown_model")
    assert error_of(client.get("/v2/models/mnist/ready")) == (404, "unknown_model")


def test_feature_layers_only_when_asked(client: TestClient, digits: Split) -> None:
    images = digits.images[:2].astype(np.float32)
    assert set(outputs_of(infer(client, {"inputs": [pixels_tensor(images)]}))) == {"probabilities", "label"}
    asked = outputs_of(infer(client, {"inputs": [pixels_tensor(images)], "outputs": [{"name": "pool1"}]}))
    assert set(asked) == {"pool1"} and asked["pool1"]["shape"] == [2, *SHAPES["pool1"]]


ZEROS = np.zeros((1, 28, 28), np.float32)
BOMB = base64.b64encode(png_header_only(5000, 5000)).decode()

# The same limits and checks as /v1, with the same codes; the protocol's own malformations get 400.
FAILURES: list[tuple[str, dict[str, Any], int, str]] = [
    ("too many images", {"inputs": [pixels_tensor(np.zeros((9, 28, 28), np.float32))]}, 413, "too_many_images"),
    ("pixel over 255", {"inputs": [pixels_tensor(ZEROS + 256)]}, 422, "invalid_pixels"),
    ("negative pixel", {"inputs": [pixels_tensor(ZEROS - 1)]}, 422, "invalid_pixels"),
    ("decompression bomb", {"inputs": [tensor("image", "BYTES", [1], [BOMB])]}, 413, "image_too_large"),
    (
        "not an image",
        {"inputs": [tensor("image", "BYTES", [1], [base64.b64encode(b"GIF?").decode()])]},
        400,
        "image_decode_failed",
    ),
    ("not base64", {"inputs": [tensor("image", "BYTES", [1], ["%%%"])]}, 400, "invalid_base64"),
    ("image as numbers", {"inputs": [tensor("image", "BYTES", [1], [1])]}, 400, "invalid_tensor"),
    ("pixels as strings", {"inputs": [tensor("pixels", "FP32", [1, 28, 28], ["a"] * 784)]}, 400, "invalid_tensor"),
    ("wrong pixel shape", {"inputs": [tensor("pixels", "FP32", [1, 27, 29], [0] * 783)]}, 400, "invalid_tensor"),
    ("two inputs", {"inputs": [pixels_tensor(ZEROS), pixels_tensor(ZEROS)]}, 400, "invalid_tensor"),
    ("no data", {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28]}]}, 400, "invalid_tensor"),
    ("empty batch", {"inputs": [tensor("pixels", "FP32", [0, 28, 28], [])]}, 400, "invalid_tensor"),
    ("no inputs", {"inputs": []}, 422, "invalid_request"),
    ("top_k 0", {"inputs": [pixels_tensor(ZEROS)], "parameters": {"top_k": 0}}, 422, "invalid_top_k"),
    (
        "bad binary size",
        {"inputs": [{**pixels_tensor(ZEROS), "parameters": {"binary_data_size": -1}}]},
        400,
        "invalid_binary_data",
    ),
]


@pytest.mark.parametrize(("body", "status", "code"), [f[1:] for f in FAILURES], ids=[f[0] for f in FAILURES])
def test_refusals(client: TestClient, body: dict[str, Any], status: int, code: str) -> None:
    assert error_of(infer(client, body)) == (status, code)


def test_body_limits_and_framing(client: TestClient) -> None:
    assert error_of(client.post(INFER, content=b"{" + b" " * 300_000 + b"}")) == (413, "body_too_large")
    assert error_of(client.post(INFER, content=b"")) == (400, "empty_body")
    assert error_of(client.post(INFER, content=b"{nope")) == (400, "invalid_json")
    header = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28]}]}
    not_a_length = client.post(INFER, content=orjson.dumps(header), headers={HEADER_LENGTH: "ten"})
    assert error_of(not_a_length) == (400, "invalid_binary_data")


def test_protocol_errors_for_unknown_routes_and_methods(client: TestClient) -> None:
    assert error_of(client.get("/v2/no-such-route")) == (404, "not_found")
    assert error_of(client.get("/v2/repository/index")) == (405, "method_not_allowed")
    assert error_of(client.get(INFER)) == (405, "method_not_allowed")


def test_routes_appear_as_templates_in_metrics(client: TestClient, digits: Split) -> None:
    infer(client, {"inputs": [pixels_tensor(digits.images[:1].astype(np.float32))]})
    client.get(f"/v2/models/digits/versions/{VERSION}/ready")
    text = client.get("/metrics").text
    assert 'route="/v2/models/{model_name}/infer",status="200"' in text
    assert 'route="/v2/models/{model_name}/versions/{model_version}/ready"' in text
    assert "/v2/models/digits/" not in text


def test_openapi_describes_the_v2_routes(client: TestClient) -> None:
    document = client.get("/openapi.json")
    references = set(re.findall(r'"\$ref":"#/components/schemas/([^"]+)"', document.text))
    assert references and references <= set(document.json()["components"]["schemas"])  # none points nowhere
    paths = document.json()["paths"]
    expected = {
        "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{model_name}", "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/versions/{model_version}/ready",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    }  # fmt: skip
    assert expected <= set(paths)
    content = paths["/v2/models/{model_name}/infer"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/octet-stream"} <= set(content)
    assert "400" in paths["/v2/models/{model_name}/infer"]["post"]["responses"]
