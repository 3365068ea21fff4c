"""The gateway in front of a real TorchServe: the contract with the embedded backend, outages, failures.

The contract: one suite of requests, sent to a gateway running the model itself and to a gateway with
``DIGITS_BACKEND=torchserve``, gives the same response bodies (probabilities within 1e-5), each of them a
valid PredictResponse.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton_http
from PIL import Image

from model.mnist import Split
from ops.local_servers import ServerProcess, wait_until_ready
from ops.torchserve.launcher import TorchServe
from service.backends.torchserve.client import TorchServeBackend
from service.core.errors import ApiError, ErrorCode
from service.core.schemas import PredictResponse
from service.core.settings import Settings
from tests.backends.conftest import torchserve_env
from tests.explanations import check_input_is_the_field, check_saliency, check_weights_reproduce_conv1, decoded
from tests.servers import gateway_process
from tests.uploads import encode, realistic_upload

ATOL = 1e-5


@pytest.fixture(scope="module")
def ts_gateway(torchserve: TorchServe, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with gateway_process(tmp_path_factory.mktemp("ts-gateway"), torchserve_env(torchserve)) as server:
        yield server


@pytest.fixture(scope="module")
def digits(labelled_digits: Split) -> Split:
    return Split(labelled_digits.images[:8], labelled_digits.labels[:8])


# --- the contract ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request: a JSON body, or multipart files with query options."""

    json: dict[str, Any] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    params: dict[str, str] | None = None

    def send(self, base_url: str) -> httpx.Response:
        return httpx.post(f"{base_url}/v1/predict", json=self.json, files=self.files, params=self.params, timeout=60)


def pixels(images: np.ndarray) -> list[dict[str, Any]]:
    return [{"pixels": image.tolist()} for image in images]


def b64_png(image: np.ndarray) -> dict[str, str]:
    return {"image": base64.b64encode(encode(255 - image)).decode()}


def files(kind: str, blobs: list[bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"{i}.{kind}", blob, f"image/{kind}")) for i, blob in enumerate(blobs)]


def contract_calls(digits: Split) -> dict[str, Call]:
    rng = np.random.default_rng(7)
    images = digits.images
    none = {"preprocess": "none"}
    return {
        "json-pixels-none": Call(json={"instances": pixels(images[:1]), **none}),
        "json-pixels-auto": Call(json={"instances": pixels(images[:3]), "preprocess": "auto"}),
        "json-base64-png": Call(json={"instances": [b64_png(images[3])]}),
        "json-mixed-8-images": Call(json={"instances": pixels(images[:4]) + [b64_png(i) for i in images[4:]]}),
        "multipart-png": Call(files=files("png", [encode(255 - d) for d in images[:2]])),
        "multipart-jpeg-photos": Call(files=files("jpeg", [realistic_upload(d, rng) for d in images[5:8]])),
        "top-k-10": Call(json={"instances": pixels(images[:2]), **none, "top_k": 10}),
        "features-all-array": Call(json={"instances": pixels(images[:2]), **none, "features": ["all"]}),
        "features-some-png": Call(
            json={"instances": pixels(images[2:4]), "features": ["conv1", "pool2"], "feature_format": "png"}
        ),
        "multipart-features": Call(
            files=files("png", [encode(images[6])]),
            params={"features": "conv2,pool1", "feature_format": "array", "top_k": "2"},
        ),
        "explain-multipart": Call(
            files=files("jpeg", [realistic_upload(d, rng) for d in images[:2]]),
            params={"explain": "input,saliency,preprocessing", "features": "conv1"},
        ),
        "explain-another-class": Call(
            json={"instances": pixels(images[5:7]), **none, "explain": ["saliency"], "saliency_label": 3}
        ),
        "explain-json-png": Call(
            json={"instances": pixels(images[2:5]), **none, "explain": ["input", "saliency"], "feature_format": "png"}
        ),
        "error-top-k": Call(json={"instances": pixels(images[:1]), "top_k": 0}),
        "error-explain-preprocessing": Call(
            json={"instances": pixels(images[:1]), **none, "explain": ["preprocessing"]}
        ),
        "error-unknown-layer": Call(json={"instances": pixels(images[:1]), "features": ["fc7"]}),
        "error-wrong-size": Call(json={"instances": [{"pixels": [[0, 255], [255, 0]]}], **none}),
    }


CONTRACT = [
    "json-pixels-none", "json-pixels-auto", "json-base64-png", "json-mixed-8-images", "multipart-png",
    "multipart-jpeg-photos", "top-k-10", "features-all-array", "features-some-png", "multipart-features",
    "explain-multipart", "explain-another-class", "explain-json-png", "error-top-k", "error-unknown-layer",
    "error-wrong-size", "error-explain-preprocessing",
]  # fmt: skip


@pytest.mark.torchserve
@pytest.mark.parametrize("name", CONTRACT)
def test_both_backends_give_the_same_response(
    name: str, digits: Split, gateway: ServerProcess, ts_gateway: ServerProcess
) -> None:
    call = contract_calls(digits)[name]
    embedded, via_torchserve = call.send(gateway.url), call.send(ts_gateway.url)
    assert via_torchserve.status_code == embedded.status_code, via_torchserve.text
    if embedded.status_code != 200:
        assert via_torchserve.json() == embedded.json()
        return
    expected, actual = embedded.json(), via_torchserve.json()
    PredictResponse.model_validate(expected)
    PredictResponse.model_validate(actual)
    assert actual["model"] == expected["model"]
    assert len(actual["predictions"]) == len(expected["predictions"])
    for mine, theirs in zip(actual["predictions"], expected["predictions"], strict=True):
        assert_same_prediction(mine, theirs)


def assert_same_prediction(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(actual) == set(expected)
    assert actual["label"] == expected["label"]
    np.testing.assert_allclose(actual["probabilities"], expected["probabilities"], atol=ATOL, rtol=0)
    assert actual["confidence"] == pytest.approx(expected["confidence"], abs=ATOL)
    assert len(actual["top_k"]) == len(expected["top_k"])
    for mine, theirs in zip(actual["top_k"], expected["top_k"], strict=True):
        assert mine["probability"] == pytest.approx(theirs["probability"], abs=ATOL)
        # Labels may swap only between probabilities closer than the tolerance.
        assert mine["label"] == theirs["label"] or abs(mine["probability"] - theirs["probability"]) < ATOL * 2
    for layer, theirs in (expected.get("features") or {}).items():
        mine = actual["features"][layer]
        assert {k: v for k, v in mine.items() if k != "data"} == {k: v for k, v in theirs.items() if k != "data"}
        np.testing.assert_allclose(feature_values(mine), feature_values(theirs), atol=1e-4, rtol=1e-4)
    if "explain" in expected:
        assert_same_explanation(actual["explain"], expected["explain"])


def assert_same_explanation(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """The gateway made the input and the stages: identical. Each backend computed the saliency: close."""
    assert set(actual) == set(expected)
    assert actual.get("input") == expected.get("input")
    assert actual.get("preprocessing") == expected.get("preprocessing")
    mine, theirs = actual["saliency"], expected["saliency"]
    assert {k: v for k, v in mine.items() if k != "data"} == {k: v for k, v in theirs.items() if k != "data"}
    if theirs["format"] == "array":
        scale = np.abs(decoded(theirs)).max()
        np.testing.assert_allclose(decoded(mine), decoded(theirs), atol=1e-4 * scale, rtol=0)
    else:  # each rounded to 8 bits: tiny float differences move a pixel by 1
        np.testing.assert_allclose(decoded(mine), decoded(theirs), atol=1, rtol=0)


def feature_values(encoded: dict[str, Any]) -> np.ndarray:
    data = base64.b64decode(encoded["data"])
    if encoded["format"] == "array":
        return np.frombuffer(data, "<f4").reshape(encoded["shape"])
    # A PNG tile is each channel scaled to 0-255 and rounded: tiny float differences move a pixel by 1.
    return np.asarray(Image.open(io.BytesIO(data)), dtype=np.float32) / 2


@pytest.mark.torchserve
def test_feature_maps_through_torchserve_have_the_cards_shapes(ts_gateway: ServerProcess, digits: Split) -> None:
    card = httpx.get(f"{ts_gateway.url}/v1/models/digits").json()
    shapes = {row["name"]: row["output_shape"] for row in card["layers"] if row["feature_map"]}
    assert card["serving"]["backend"] == "torchserve"
    body = {"instances": pixels(digits.images[:3]), "preprocess": "none", "features": ["all"]}
    predictions = httpx.post(f"{ts_gateway.url}/v1/predict", json=body, timeout=60).json()["predictions"]
    for prediction, label in zip(predictions, digits.labels[:3], strict=True):
        assert prediction["label"] == label
        assert list(prediction["features"]) == list(shapes)
        for name, encoded in prediction["features"].items():
            values = feature_values(encoded)
            assert list(values.shape) == shapes[name] and np.isfinite(values).all()


@pytest.mark.torchserve
def test_the_open_inference_protocol_through_torchserve(
    digits: Split, gateway: ServerProcess, ts_gateway: ServerProcess
) -> None:
    """tritonclient against both backends: binary pixels and image files in, labels and conv1 out, the same."""
    pixels_in = triton_http.InferInput("pixels", [8, 28, 28], "FP32")
    pixels_in.set_data_from_numpy(digits.images.astype(np.float32), binary_data=True)
    files_in = triton_http.InferInput("image", [8], "BYTES")
    files_in.set_data_from_numpy(np.array([encode(255 - d) for d in digits.images], np.object_), binary_data=True)
    outputs = [triton_http.InferRequestedOutput(name) for name in ("label", "probabilities", "conv1")]
    for tensor in (pixels_in, files_in):
        results = []
        for server in (gateway, ts_gateway):
            client = triton_http.InferenceServerClient(url=server.url.removeprefix("http://"))
            assert client.is_model_ready("digits")
            results.append(client.infer("digits", [tensor], outputs=outputs))
            client.close()
        embedded, via_torchserve = results
        assert via_torchserve.as_numpy("label").tolist() == digits.labels.tolist()
        assert via_torchserve.as_numpy("label").tolist() == embedded.as_numpy("label").tolist()
        for name in ("probabilities", "conv1"):
            np.testing.assert_allclose(via_torchserve.as_numpy(name), embedded.as_numpy(name), atol=ATOL, rtol=0)


@pytest.mark.torchserve
def test_explain_and_the_layers_endpoint_through_torchserve(ts_gateway: ServerProcess) -> None:
    """TorchServe's handler computes the saliency; the gateway reads conv1's weights off the same artifact."""
    explained = check_input_is_the_field(ts_gateway.url)
    check_saliency(explained)
    check_weights_reproduce_conv1(ts_gateway.url, explained)


# --- outages --------------------------------------------------------------------------------------


@pytest.mark.torchserve
def test_torchserve_down_gives_503_and_traffic_resumes_when_it_is_back(
    torchserve: TorchServe, ts_gateway: ServerProcess, digits: Split
) -> None:
    body = {"instances": pixels(digits.images[:2]), "preprocess": "none"}
    before = httpx.post(f"{ts_gateway.url}/v1/predict", json=body, timeout=30)
    assert before.status_code == 200
    group = torchserve.pid
    assert group is not None
    torchserve.stop()
    try:
        with pytest.raises(ProcessLookupError):  # the frontend and every worker are gone
            os.killpg(group, 0)
        # A hang would trip this client's timeout (5 s) long before the gateway's own (10 s).
        down = httpx.post(f"{ts_gateway.url}/v1/predict", json=body, timeout=5)
        assert down.status_code == 503 and down.json()["error"]["code"] == "backend_unavailable"
        assert down.headers["Retry-After"] == "1"
        ready = httpx.get(f"{ts_gateway.url}/readyz", timeout=5)
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
    finally:
        torchserve.start()
        torchserve.wait_ready()
    wait_until_ready(f"{ts_gateway.url}/readyz", timeout=30)
    after = httpx.post(f"{ts_gateway.url}/v1/predict", json=body, timeout=30)
    assert after.status_code == 200
    np.testing.assert_allclose(
        [p["probabilities"] for p in after.json()["predictions"]],
        [p["probabilities"] for p in before.json()["predictions"]],
        atol=ATOL,
    )
    assert ts_gateway.process.poll() is None  # the same gateway process served throughout
    metrics = httpx.get(f"{ts_gateway.url}/metrics").text
    assert 'digits_errors_total{code="backend_unavailable"}' in metrics


# --- the client's failure policy, against plain sockets that misbehave on purpose ------------------


@dataclass
class Misbehaving:
    """A TCP server on loopback that either never answers or hangs up at once; counts connections."""

    hang: bool
    connections: int = 0
    url: str = ""


@pytest.fixture
async def misbehaving(request: pytest.FixtureRequest) -> AsyncIterator[Misbehaving]:
    state = Misbehaving(hang=request.param == "hang")
    release = asyncio.Event()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        await reader.read(1)
        if state.hang:
            await release.wait()
        writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    yield state
    release.set()
    server.close()


def backend_for(url: str, timeout: float = 0.5) -> TorchServeBackend:
    return TorchServeBackend(
        inference_url=url,
        management_url=url,
        model="digits",
        timeout_seconds=timeout,
        connect_timeout_seconds=0.5,
        health_timeout_seconds=0.5,
        max_connections=4,
    )


BATCH = np.zeros((2, 1, 28, 28), np.float32)


async def predict_error(misbehaving: Misbehaving) -> tuple[ApiError, int, bool]:
    """The error a prediction against the misbehaving server ends in, the connections it made, and whether the
    backend then says it is ready."""
    backend = backend_for(misbehaving.url)
    await backend.setup()
    try:
        misbehaving.connections = 0
        with pytest.raises(ApiError) as error:
            await backend.predict(BATCH, frozenset())
        connections = misbehaving.connections
        return error.value, connections, await backend.ready()
    finally:
        await backend.close()


@pytest.mark.parametrize("misbehaving", ["hang"], indirect=True)
async def test_a_backend_that_never_answers_is_a_timeout_and_is_not_retried(misbehaving: Misbehaving) -> None:
    error, connections, ready = await predict_error(misbehaving)
    assert error.code == ErrorCode.backend_timeout and error.status == 504
    assert connections == 1
    assert not ready


@pytest.mark.parametrize("misbehaving", ["hang-up"], indirect=True)
async def test_a_dropped_connection_is_retried_once_then_503(misbehaving: Misbehaving) -> None:
    error, connections, _ = await predict_error(misbehaving)
    assert error.code == ErrorCode.backend_unavailable and error.status == 503
    assert error.headers == {"Retry-After": "1"}
    assert connections == 2


async def test_a_refused_connection_is_503_at_once() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there any more
    backend = backend_for(f"http://127.0.0.1:{port}", timeout=30)
    await backend.setup()
    try:
        started = time.monotonic()
        with pytest.raises(ApiError) as error:
            await backend.predict(BATCH, frozenset())
        assert error.value.code == ErrorCode.backend_unavailable
        assert time.monotonic() - started < 30  # answered, not left to the 30 s request timeout
        assert not await backend.ready()
    finally:
        await backend.close()


@pytest.mark.parametrize("setting", ["DIGITS_TORCHSERVE_URL", "DIGITS_TORCHSERVE_MANAGEMENT_URL"])
def test_a_bad_url_is_refused_at_construction(setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(setting, "127.0.0.1:8080")
    with pytest.raises(ValueError, match=setting):
        TorchServeBackend.from_settings(Settings())
