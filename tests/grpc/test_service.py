"""The Open Inference Protocol over gRPC on a real gateway process, through Triton's gRPC clients (plain and aio):
health, metadata, inference with raw tensors equal to /v1's answers, and every kind of bad input refused with its
status while the server stays up."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_grpc_aio
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from loadtest.samples import Sample, load_samples
from model.card import load_card
from model.settings import DEFAULT_ARTIFACT
from tests.grpc.conftest import GrpcGateway

MODEL = "digits"
CARD = load_card(DEFAULT_ARTIFACT)
VERSION = CARD.version
SHAPES = {layer.name: layer.output_shape for layer in CARD.layers}
REQUESTS = "digits_http_requests_total"
ERRORS = "digits_errors_total"


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return load_samples()


def pixels_of(samples: Sequence[Sample]) -> np.ndarray:
    return np.array([sample.pixels for sample in samples], dtype=np.float32)


def pixels_input(pixels: np.ndarray, datatype: str = "FP32") -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput("pixels", list(pixels.shape), datatype)
    tensor.set_data_from_numpy(pixels)
    return tensor


def outputs(*names: str) -> list[triton_grpc.InferRequestedOutput]:
    return [triton_grpc.InferRequestedOutput(name) for name in names]


def v1_predictions(url: str, samples: Sequence[Sample], features: list[str] | None = None) -> list[dict[str, object]]:
    body: dict[str, object] = {"instances": [{"pixels": s.pixels} for s in samples], "preprocess": "none"}
    if features:
        body["features"] = features
    predictions: list[dict[str, object]] = (
        httpx.post(f"{url}/v1/predict", json=body, timeout=30).raise_for_status().json()["predictions"]
    )
    return predictions


def test_health_readiness_and_metadata(triton: triton_grpc.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(MODEL)
    assert triton.is_model_ready(MODEL, VERSION)
    server = triton.get_server_metadata(as_json=True)
    assert server["name"] == "digits" and server["extensions"] == ["binary_tensor_data", "model_repository"]
    model = triton.get_model_metadata(MODEL, as_json=True)
    assert model["name"] == MODEL and model["versions"] == [VERSION] and model["platform"] == "pytorch_torchscript"
    # int64 fields come out of protobuf's JSON as strings
    inputs = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in model["inputs"]}
    assert inputs == {"pixels": ("FP32", [-1, 28, 28]), "image": ("BYTES", [-1])}
    shapes = {t["name"]: (t["datatype"], [int(d) for d in t["shape"]]) for t in model["outputs"]}
    assert shapes["probabilities"] == ("FP32", [-1, 10])
    assert shapes["conv1"] == ("FP32", [-1, *SHAPES["conv1"]])


def test_an_unknown_model_or_version_is_not_found(triton: triton_grpc.InferenceServerClient) -> None:
    for name, version in (("no-such-model", ""), (MODEL, "0.0.0-none")):
        with pytest.raises(InferenceServerException) as refused:
            triton.get_model_metadata(name, version)
        assert refused.value.status() == "StatusCode.NOT_FOUND"
        assert refused.value.message().startswith("unknown_model: ")


def test_raw_inputs_give_v1s_probabilities(
    triton: triton_grpc.InferenceServerClient, grpc_gateway: GrpcGateway, samples: list[Sample]
) -> None:
    result = triton.infer(
        MODEL, [pixels_input(pixels_of(samples))], outputs=outputs("probabilities", "label"), request_id="run-1"
    )
    response = result.get_response()
    assert response.id == "run-1" and response.model_version == VERSION
    assert len(response.raw_output_contents) == 2
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape == (len(samples), 10)
    v1 = v1_predictions(grpc_gateway.url, samples)
    expected = np.array([prediction["probabilities"] for prediction in v1], np.float32)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    assert result.as_numpy("label").tolist() == [sample.label for sample in samples]


def test_uint8_pixels_and_image_files(triton: triton_grpc.InferenceServerClient, samples: list[Sample]) -> None:
    labels = [sample.label for sample in samples]
    uint8 = triton.infer(MODEL, [pixels_input(pixels_of(samples).astype(np.uint8), "UINT8")])
    assert uint8.as_numpy("label").tolist() == labels
    files = triton_grpc.InferInput("image", [len(samples)], "BYTES")
    files.set_data_from_numpy(np.array([sample.png for sample in samples], dtype=np.object_))
    assert triton.infer(MODEL, [files], outputs=outputs("label")).as_numpy("label").tolist() == labels


def test_conv1_as_an_output_equals_v1s(
    triton: triton_grpc.InferenceServerClient, grpc_gateway: GrpcGateway, samples: list[Sample]
) -> None:
    chosen = samples[:4]
    result = triton.infer(MODEL, [pixels_input(pixels_of(chosen))], outputs=outputs("conv1", "label"))
    assert [output.name for output in result.get_response().outputs] == ["conv1", "label"]
    conv1 = result.as_numpy("conv1")
    assert conv1.shape == (4, *SHAPES["conv1"])
    for index, prediction in enumerate(v1_predictions(grpc_gateway.url, chosen, ["conv1"])):
        feature = prediction["features"]["conv1"]  # type: ignore[index]
        expected = np.frombuffer(base64.b64decode(feature["data"]), "<f4").reshape(feature["shape"])
        np.testing.assert_allclose(conv1[index], expected, rtol=0, atol=1e-6)


def test_top_k_parameter_adds_the_ranked_outputs(
    triton: triton_grpc.InferenceServerClient, samples: list[Sample]
) -> None:
    result = triton.infer(MODEL, [pixels_input(pixels_of(samples[:3]))], parameters={"top_k": 4})
    names = [output.name for output in result.get_response().outputs]
    assert names == ["probabilities", "label", "top_k_labels", "top_k_probabilities"]
    assert result.as_numpy("top_k_labels").shape == (3, 4)


async def test_the_aio_client(grpc_gateway: GrpcGateway, samples: list[Sample]) -> None:
    async with triton_grpc_aio.InferenceServerClient(url=grpc_gateway.grpc_address) as client:
        assert await client.is_server_live()
        assert await client.is_model_ready(MODEL)
        metadata = await client.get_model_metadata(MODEL, as_json=True)
        assert metadata["versions"] == [VERSION]
        tensor = triton_grpc.InferInput("pixels", [len(samples), 1, 28, 28], "FP32")
        tensor.set_data_from_numpy(pixels_of(samples).reshape(-1, 1, 28, 28))
        result = await client.infer(MODEL, [tensor], outputs=outputs("label", "pool2"))
    assert result.as_numpy("label").tolist() == [sample.label for sample in samples]
    assert result.as_numpy("pool2").shape == (len(samples), *SHAPES["pool2"])


def wrong_size_input() -> triton_grpc.InferInput:
    tensor = pixels_input(np.zeros((1, 28, 28), np.float32))
    tensor.set_shape([2, 28, 28])  # the raw contents hold one image
    return tensor


BAD_INPUTS: dict[str, tuple[list[triton_grpc.InferInput], list[str], grpc.StatusCode, str]] = {
    "wrong datatype": (
        [pixels_input(np.zeros((1, 28, 28), np.int32), "INT32")],
        [],
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_tensor: input 'pixels' has datatype INT32",
    ),
    "wrong shape": (
        [pixels_input(np.zeros((1, 27, 27), np.float32))],
        [],
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_tensor: input 'pixels' has shape [1, 27, 27]",
    ),
    "raw contents of the wrong size": (
        [wrong_size_input()],
        [],
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_tensor: input 'pixels' has 3136 bytes of binary data; shape [2, 28, 28] of FP32 takes 6272",
    ),
    "unknown output": (
        [pixels_input(np.zeros((1, 28, 28), np.float32))],
        ["conv9"],
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown_output: unknown output(s) 'conv9'",
    ),
    "too many images": (
        [pixels_input(np.zeros((65, 28, 28), np.float32))],
        [],
        grpc.StatusCode.INVALID_ARGUMENT,
        "too_many_images: 65 images in one request; the limit is 64",
    ),
    # 3,000 images of FP32 are 9.4 MB, over DIGITS_MAX_BODY_BYTES (8 MiB): gRPC refuses the message itself
    "a message over the size limit": (
        [pixels_input(np.zeros((3000, 28, 28), np.float32))],
        [],
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "Received message larger than max",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_its_status_and_the_server_stays_up(
    triton: triton_grpc.InferenceServerClient, case: str
) -> None:
    inputs, requested, status, message = BAD_INPUTS[case]
    with pytest.raises(InferenceServerException) as refused:
        triton.infer(MODEL, inputs, outputs=outputs(*requested) or None)
    assert refused.value.status() == str(status)
    assert message in refused.value.message()
    assert triton.is_server_live() and triton.is_model_ready(MODEL)


def test_calls_are_counted_by_route_and_errors_by_code(
    triton: triton_grpc.InferenceServerClient, grpc_gateway: GrpcGateway
) -> None:
    def count(name: str, **labels: str) -> float:
        text = httpx.get(f"{grpc_gateway.url}/metrics", timeout=10).raise_for_status().text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    live = {"route": "grpc:ServerLive", "method": "POST", "status": "200"}
    refused = {"route": "grpc:ModelInfer", "method": "POST", "status": "400"}
    before = [count(REQUESTS, **live), count(REQUESTS, **refused), count(ERRORS, code="unknown_output")]
    triton.is_server_live()
    with pytest.raises(InferenceServerException):
        triton.infer(MODEL, [pixels_input(np.zeros((1, 28, 28), np.float32))], outputs=outputs("conv9"))
    after = [count(REQUESTS, **live), count(REQUESTS, **refused), count(ERRORS, code="unknown_output")]
    assert after == [value + 1 for value in before]
