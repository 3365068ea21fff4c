"""The Open Inference Protocol on a real gateway process, through the protocol's own clients: tritonclient.http
(Triton's) and KServe's InferenceRESTClient. Labels must be right on the shipped samples, and feature maps equal
/v1's. Malformed requests each get a 400 in the protocol's error shape, and the server stays up."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton_http
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from tritonclient.utils import InferenceServerException

from loadtest.samples import Sample, load_samples
from model.card import load_card
from model.settings import DEFAULT_ARTIFACT
from ops.local_servers import ServerProcess

MODEL = "digits"
CARD = load_card(DEFAULT_ARTIFACT)
VERSION = CARD.version
SHAPES = {layer.name: layer.output_shape for layer in CARD.layers}
HEADER_LENGTH = "Inference-Header-Content-Length"


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return load_samples()


@pytest.fixture(scope="module")
def triton(gateway: ServerProcess) -> Iterator[triton_http.InferenceServerClient]:
    client = triton_http.InferenceServerClient(url=gateway.url.removeprefix("http://"))
    yield client
    client.close()


def pixels_of(samples: Sequence[Sample]) -> np.ndarray:
    return np.array([sample.pixels for sample in samples], dtype=np.float32)


def labels_of(samples: Sequence[Sample]) -> list[int]:
    return [sample.label for sample in samples]


def pixels_input(pixels: np.ndarray, binary: bool) -> triton_http.InferInput:
    tensor = triton_http.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    return tensor


def test_health_readiness_and_metadata(triton: triton_http.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(MODEL)
    assert triton.is_model_ready(MODEL, VERSION)
    assert not triton.is_model_ready("no-such-model")
    server = triton.get_server_metadata()
    assert server["name"] == "digits" and "binary_tensor_data" in server["extensions"]
    model = triton.get_model_metadata(MODEL)
    assert model["name"] == MODEL and model["versions"] == [VERSION]
    assert {t["name"]: (t["datatype"], t["shape"]) for t in model["inputs"]} == {
        "pixels": ("FP32", [-1, 28, 28]),
        "image": ("BYTES", [-1]),
    }
    outputs = {t["name"]: (t["datatype"], t["shape"]) for t in model["outputs"]}
    assert outputs["probabilities"] == ("FP32", [-1, 10])
    assert outputs["label"] == ("INT64", [-1])
    assert outputs["conv1"] == ("FP32", [-1, *SHAPES["conv1"]])
    assert outputs["pool2"] == ("FP32", [-1, *SHAPES["pool2"]])


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_labels_the_shipped_samples(
    triton: triton_http.InferenceServerClient, samples: list[Sample], binary: bool
) -> None:
    pixels = pixels_of(samples)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("label", "probabilities")]
    result = triton.infer(MODEL, [pixels_input(pixels, binary)], outputs=outputs, request_id="sample-run")
    assert result.as_numpy("label").tolist() == labels_of(samples)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(samples), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.get_response()["id"] == "sample-run"


def test_image_files_as_binary_bytes_are_preprocessed_like_v1_auto(
    triton: triton_http.InferenceServerClient, samples: list[Sample]
) -> None:
    files = np.array([sample.png for sample in samples], dtype=np.object_)
    tensor = triton_http.InferInput("image", [len(samples)], "BYTES")
    tensor.set_data_from_numpy(files, binary_data=True)
    result = triton.infer(MODEL, [tensor], outputs=[triton_http.InferRequestedOutput("label")])
    assert result.as_numpy("label").tolist() == labels_of(samples)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_conv1_feature_map_equals_v1s(
    triton: triton_http.InferenceServerClient, gateway: ServerProcess, samples: list[Sample], binary: bool
) -> None:
    chosen = samples[:4]
    pixels = pixels_of(chosen)
    outputs = [triton_http.InferRequestedOutput(name, binary_data=binary) for name in ("conv1", "label")]
    result = triton.infer(MODEL, [pixels_input(pixels, binary)], outputs=outputs)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["conv1", "label"]
    conv1 = result.as_numpy("conv1")
    assert conv1.shape == (4, *SHAPES["conv1"])
    body = {"instances": [{"pixels": s.pixels} for s in chosen], "preprocess": "none", "features": ["conv1"]}
    v1 = httpx.post(f"{gateway.url}/v1/predict", json=body, timeout=30).raise_for_status().json()
    for index, prediction in enumerate(v1["predictions"]):
        feature = prediction["features"]["conv1"]
        expected = np.frombuffer(base64.b64decode(feature["data"]), "<f4").reshape(feature["shape"])
        np.testing.assert_allclose(conv1[index], expected, rtol=0, atol=1e-6)
    assert result.as_numpy("label").tolist() == labels_of(chosen)


def test_top_k_parameter_adds_the_ranked_outputs(
    triton: triton_http.InferenceServerClient, samples: list[Sample]
) -> None:
    pixels = pixels_of(samples[:3])
    result = triton.infer(MODEL, [pixels_input(pixels, True)], parameters={"top_k": 4})
    names = [o["name"] for o in result.get_response()["outputs"]]
    assert names == ["probabilities", "label", "top_k_labels", "top_k_probabilities"]
    ranked = result.as_numpy("top_k_labels")
    assert ranked.shape == (3, 4) and ranked[:, 0].tolist() == labels_of(samples[:3])
    top = result.as_numpy("top_k_probabilities")
    np.testing.assert_array_equal(top, np.take_along_axis(result.as_numpy("probabilities"), ranked, axis=1))


def test_unknown_output_is_refused_by_name(triton: triton_http.InferenceServerClient, samples: list[Sample]) -> None:
    with pytest.raises(InferenceServerException) as refused:
        triton.infer(
            MODEL, [pixels_input(pixels_of(samples[:1]), True)], outputs=[triton_http.InferRequestedOutput("fc9")]
        )
    assert refused.value.status() == "400"
    assert "unknown_output" in refused.value.message() and "fc9" in refused.value.message()
    assert triton.is_server_live()


async def test_kserve_rest_client(gateway: ServerProcess, samples: list[Sample]) -> None:
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    try:
        assert await client.is_server_ready(gateway.url)
        assert await client.is_model_ready(gateway.url, MODEL)
        tensor = InferInput("pixels", [len(samples), 1, 28, 28], "FP32")
        tensor.set_data_from_numpy(pixels_of(samples).reshape(-1, 1, 28, 28), binary_data=True)
        request = InferRequest(
            model_name=MODEL,
            infer_inputs=[tensor],
            request_outputs=[RequestedOutput("label", {"binary_data": True}), RequestedOutput("pool2")],
        )
        response = await client.infer(gateway.url, request, model_name=MODEL)
    finally:
        await client.close()
    outputs = {output.name: output.as_numpy() for output in response.outputs}
    assert outputs["label"].tolist() == labels_of(samples)
    assert outputs["pool2"].shape == (len(samples), *SHAPES["pool2"])


def binary_request(inputs: list[dict[str, object]], binary: bytes, *, header_extra: int = 0) -> tuple[bytes, str]:
    header = orjson.dumps({"inputs": inputs})
    return header + binary, str(len(header) + header_extra)


PIXEL = np.zeros((1, 28, 28), np.float32)
PIXEL_BYTES = PIXEL.tobytes()


def json_input(name: str = "pixels", datatype: str = "FP32", shape: list[int] | None = None) -> dict[str, object]:
    return {"name": name, "datatype": datatype, "shape": shape or [1, 28, 28], "data": PIXEL.ravel().tolist()}


def binary_input(size: int = len(PIXEL_BYTES)) -> dict[str, object]:
    return {"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28], "parameters": {"binary_data_size": size}}


EDGE_CASES: dict[str, tuple[bytes, str | None, str]] = {
    "unknown input name": (orjson.dumps({"inputs": [json_input(name="digit")]}), None, "invalid_tensor"),
    "wrong datatype": (orjson.dumps({"inputs": [json_input(datatype="FP64")]}), None, "invalid_tensor"),
    "shape not matching the data": (
        orjson.dumps({"inputs": [json_input(shape=[2, 28, 28])]}),
        None,
        "invalid_tensor",
    ),
    "binary size larger than the body": (*binary_request([binary_input(4000)], PIXEL_BYTES), "invalid_binary_data"),
    "binary size smaller than the body": (*binary_request([binary_input(3000)], PIXEL_BYTES), "invalid_binary_data"),
    "binary size not the shape's": (
        *binary_request([binary_input(3000)], PIXEL_BYTES[:3000]),
        "invalid_tensor",
    ),
    "header length beyond the body": (
        *binary_request([binary_input()], PIXEL_BYTES, header_extra=len(PIXEL_BYTES) + 1),
        "invalid_binary_data",
    ),
    "unknown output name": (
        orjson.dumps({"inputs": [json_input()], "outputs": [{"name": "conv9"}]}),
        None,
        "unknown_output",
    ),
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_spec_edge_cases_get_400_and_the_server_stays_up(
    gateway: ServerProcess, triton: triton_http.InferenceServerClient, case: str
) -> None:
    body, header_length, code = EDGE_CASES[case]
    headers = {"Content-Type": "application/octet-stream"}
    if header_length is not None:
        headers[HEADER_LENGTH] = header_length
    response = httpx.post(f"{gateway.url}/v2/models/{MODEL}/infer", content=body, headers=headers, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == code and error["error"].startswith(f"{code}: ")
    assert triton.is_server_live() and triton.is_model_ready(MODEL)
