"""The predict API through the real app (in-process HTTP): contract, options, every error code.

Every 200 answer of /v1/predict is validated against the published PredictResponse schema (conftest)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from model.card import load_card
from model.mnist import Split
from model.settings import DEFAULT_ARTIFACT
from tests.core.test_decoding import png_header_only
from tests.uploads import encode, realistic_upload


def pixels_body(images: np.ndarray, **options: Any) -> dict[str, Any]:
    return {"instances": [{"pixels": d.tolist()} for d in images], **options}


def error_of(response: Any) -> tuple[int, str]:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    return response.status_code, body["error"]["code"]


def test_pixels_prediction_contract(client: TestClient, digits: Split) -> None:
    response = client.post("/v1/predict", json=pixels_body(digits.images, preprocess="none", top_k=3))
    assert response.status_code == 200
    body = response.json()
    card = load_card(DEFAULT_ARTIFACT)
    assert body["model"] == {"name": card.name, "version": card.version}
    assert [p["label"] for p in body["predictions"]] == digits.labels.tolist()
    for prediction in body["predictions"]:
        assert len(prediction["probabilities"]) == 10
        assert abs(sum(prediction["probabilities"]) - 1) < 1e-4
        assert prediction["confidence"] == max(prediction["probabilities"])
        assert prediction["top_k"][0]["label"] == prediction["label"]
        assert len(prediction["top_k"]) == 3
        assert "features" not in prediction


def test_multipart_files_in_order(client: TestClient, digits: Split) -> None:
    rng = np.random.default_rng(1)
    files = [("file", (f"{i}.jpg", realistic_upload(d, rng), "image/jpeg")) for i, d in enumerate(digits.images)]
    response = client.post("/v1/predict?top_k=1", files=files)
    assert response.status_code == 200, response.text
    assert [p["label"] for p in response.json()["predictions"]] == digits.labels.tolist()


def test_base64_images(client: TestClient, digits: Split) -> None:
    inverted = [encode(255 - d, "PNG") for d in digits.images[:3]]
    body = {"instances": [{"image": base64.b64encode(b).decode()} for b in inverted]}
    response = client.post("/v1/predict", json=body)
    assert [p["label"] for p in response.json()["predictions"]] == digits.labels[:3].tolist()


def test_feature_maps_as_arrays(client: TestClient, digits: Split) -> None:
    card = client.get("/v1/models/digits").json()
    body = pixels_body(digits.images[:2], preprocess="none", features=["all"])
    predictions = client.post("/v1/predict", json=body).json()["predictions"]
    expected = {row["name"]: row["output_shape"] for row in card["layers"] if row["feature_map"]}
    for prediction in predictions:
        assert list(prediction["features"]) == list(expected)
        for name, feature in prediction["features"].items():
            assert feature["format"] == "array" and feature["dtype"] == "float32"
            values = np.frombuffer(base64.b64decode(feature["data"]), "<f4").reshape(feature["shape"])
            assert list(values.shape) == expected[name]
            assert np.isfinite(values).all()
    first = predictions[0]["features"]["conv1"]["data"]
    assert first != predictions[1]["features"]["conv1"]["data"]


def test_feature_maps_as_png(client: TestClient, digits: Split) -> None:
    response = client.post(
        "/v1/predict?features=conv1,pool2&feature_format=png",
        files=[("file", ("d.png", encode(255 - digits.images[0]), "image/png"))],
    )
    features = response.json()["predictions"][0]["features"]
    assert list(features) == ["conv1", "pool2"]
    import io

    from PIL import Image

    for feature in features.values():
        channels, height, width = feature["shape"]
        grid = feature["grid"]
        assert grid["rows"] * grid["cols"] >= channels
        image = Image.open(io.BytesIO(base64.b64decode(feature["data"])))
        assert image.format == "PNG"
        assert image.size == (
            grid["cols"] * (width + grid["gap"]) - grid["gap"],
            grid["rows"] * (height + grid["gap"]) - grid["gap"],
        )


def test_model_card_and_serving_info(client: TestClient) -> None:
    body = client.get("/v1/models/digits").json()
    assert body["name"] == "digits-convnet"
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"  # DIGITS_DEVICE=auto
    assert body["serving"]["backend"] == "embedded" and body["serving"]["device"] == expected_device
    assert body["serving"]["batching"]["max_batch_size"] == 16


def test_openapi_and_docs(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(content)
    assert "examples" in str(spec)
    assert client.get("/docs").status_code == 200


def test_metrics_endpoint(client: TestClient) -> None:
    blank = {"instances": [{"pixels": [[0] * 28] * 28}], "preprocess": "none"}
    assert client.post("/v1/predict", json=blank).status_code == 200  # a request of its own, whatever ran before
    response = client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "digits_http_requests_total",
        "digits_http_request_duration_seconds_bucket",
        "digits_inference_duration_seconds_bucket",
        "digits_batch_size_bucket",
        "digits_queue_wait_seconds_bucket",
        "digits_queue_depth",
        "digits_inflight_requests",
        "digits_predictions_total",
        "digits_model_info",
    ):
        assert name in text
    assert 'route="/v1/predict"' in text
    assert 'backend="embedded"' in text


def test_errors_are_counted_by_code(client: TestClient) -> None:
    client.post("/v1/predict", json={"instances": [{"pixels": [[0]]}], "top_k": 0})
    assert 'digits_errors_total{code="invalid_top_k"}' in client.get("/metrics").text


NOISE = np.random.default_rng(0).integers(0, 256, (200, 200)).astype(np.uint8)
TINY = [[0]]


def raw(body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"content": body, "headers": {"content-type": content_type}}


def upload(*files: bytes, part: str = "file") -> dict[str, Any]:
    return {"files": [(part, (f"{i}.png", data, "image/png")) for i, data in enumerate(files)]}


def instances(*items: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"json": {"instances": list(items), **options}}


BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("empty body", raw(b""), 400, "empty_body"),
    ("no body, no type", {"content": b""}, 400, "empty_body"),
    ("wrong content type", raw(b"hello", "text/plain"), 415, "unsupported_media_type"),
    ("invalid json", raw(b"{"), 400, "invalid_json"),
    ("no instances", instances(), 422, "invalid_request"),
    ("image and pixels", instances({"image": "", "pixels": TINY}), 422, "invalid_request"),
    ("not an image", upload(b"plain text"), 400, "image_decode_failed"),
    ("truncated image", upload(encode(NOISE)[:20000]), 400, "image_truncated"),
    ("decompression bomb", upload(png_header_only(60000, 60000)), 413, "image_too_large"),
    ("too many images", instances(*[{"pixels": [[0] * 28] * 28}] * 9), 413, "too_many_images"),
    ("too many files", upload(*[b"x"] * 9), 413, "too_many_images"),
    ("no file part", upload(b"x", part="other"), 400, "empty_body"),
    ("empty file part", upload(b""), 400, "image_decode_failed"),
    ("malformed multipart", raw(b"hello", "multipart/form-data; boundary=bnd"), 422, "invalid_request"),
    ("multipart without boundary", raw(b"hello", "multipart/form-data"), 422, "invalid_request"),
    ("too many form fields", {**upload(b"x"), "data": {f"f{i}": "v" for i in range(17)}}, 422, "invalid_request"),
    ("body over limit", raw(b"{" + b" " * 300_000 + b"}"), 413, "body_too_large"),
    ("ragged pixels", instances({"pixels": [[0, 1], [2]]}), 422, "invalid_pixels"),
    ("1-D pixels", instances({"pixels": [0, 1, 2]}), 422, "invalid_pixels"),
    ("3-D pixels", instances({"pixels": [[[0]]]}), 422, "invalid_pixels"),
    ("NaN pixels", raw(b'{"instances": [{"pixels": [[NaN, 0]]}]}'), 422, "invalid_pixels"),
    ("inf pixels", raw(b'{"instances": [{"pixels": [[Infinity]]}]}'), 422, "invalid_pixels"),
    ("pixels out of range", instances({"pixels": [[300]]}), 422, "invalid_pixels"),
    ("wrong size for none", instances({"pixels": [[0] * 20] * 20}, preprocess="none"), 422, "wrong_image_size"),
    ("blank image", instances({"pixels": [[0] * 28] * 28}), 422, "image_empty"),
    ("unknown layer", instances({"pixels": TINY}, features=["conv9"]), 422, "unknown_feature_layer"),
    ("top_k zero", instances({"pixels": TINY}, top_k=0), 422, "invalid_top_k"),
    ("top_k eleven", instances({"pixels": TINY}, top_k=11), 422, "invalid_top_k"),
    ("top_k text", instances({"pixels": TINY}, top_k="many"), 422, "invalid_top_k"),
    ("bad base64", instances({"image": "%%%"}), 400, "invalid_base64"),
    ("unknown option", instances({"pixels": TINY}, colour="red"), 422, "invalid_request"),
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "code"), [r[1:] for r in BAD_REQUESTS], ids=[r[0] for r in BAD_REQUESTS]
)
def test_bad_input_gets_a_clear_4xx(client: TestClient, request_kwargs: dict[str, Any], status: int, code: str) -> None:
    assert error_of(client.post("/v1/predict", **request_kwargs)) == (status, code)


def test_query_options_for_multipart(client: TestClient) -> None:
    files = [("file", ("x.png", b"x", "image/png"))]
    assert error_of(client.post("/v1/predict?top_k=20", files=files)) == (422, "invalid_top_k")
    assert error_of(client.post("/v1/predict?features=nope", files=files)) == (422, "unknown_feature_layer")


def test_error_index_points_at_the_bad_input(client: TestClient, digits: Split) -> None:
    instances = [{"pixels": digits.images[0].tolist()}, {"image": base64.b64encode(b"junk").decode()}]
    body = client.post("/v1/predict", json={"instances": instances}).json()
    assert body["error"]["code"] == "image_decode_failed" and body["error"]["index"] == 1


def test_unknown_route_and_method(client: TestClient) -> None:
    assert error_of(client.get("/v9/nothing")) == (404, "not_found")
    assert error_of(client.get("/v1/predict")) == (405, "method_not_allowed")
