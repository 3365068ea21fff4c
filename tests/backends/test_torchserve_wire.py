"""The gateway <-> TorchServe wire: tensors both ways, the direct JSON format, every refusal."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import orjson
import pytest

from model.card import ModelCard, load_card
from service.backends.torchserve.wire import (
    LAYERS_HEADER,
    decode_direct_request,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    is_tensor,
)
from service.core.errors import ApiError, ErrorCode
from service.core.explanations import SALIENCY
from service.core.pipeline import Pipeline
from service.core.types import BatchOutput, Limits


@pytest.fixture(scope="module")
def card(artifact: Path) -> ModelCard:
    return load_card(artifact)


@pytest.fixture(scope="module")
def pipeline(card: ModelCard) -> Pipeline:
    return Pipeline(card, Limits(max_images=8, max_pixels=28 * 28))


def batch(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 1, 28, 28)).astype(np.float32)


def test_the_gateway_tensor_and_the_union_of_layers_arrive_bit_for_bit(card: ModelCard) -> None:
    sent = batch(5)
    layers = frozenset(card.feature_layers[-2:])
    body, headers = encode_request(sent, layers)
    assert is_tensor(body) and headers[LAYERS_HEADER] == ",".join(sorted(layers))
    received = decode_request(body, headers, card.feature_layers, max_images=8)
    np.testing.assert_array_equal(received.batch, sent)
    assert received.layers == layers
    plain_body, plain_headers = encode_request(sent, frozenset())
    assert LAYERS_HEADER not in plain_headers
    assert decode_request(plain_body, plain_headers, card.feature_layers, max_images=8).layers == frozenset()


def test_the_answer_comes_back_losslessly_with_only_the_layers_asked_for(card: ModelCard) -> None:
    rng = np.random.default_rng(2)
    probabilities = rng.dirichlet(np.ones(10), size=4).astype(np.float32)
    conv1 = rng.normal(size=(4, 16, 28, 28)).astype(np.float32)
    body = encode_response(BatchOutput(probabilities, {"conv1": conv1}))
    output = decode_response(body, 4, frozenset({"conv1"}))
    np.testing.assert_array_equal(output.probabilities, probabilities)
    np.testing.assert_array_equal(output.features["conv1"], conv1)
    assert len(body) / 4 <= 1.1 * conv1[0].nbytes  # one layer: about its float32 size per image, nothing more


def test_one_image_with_the_smallest_layer_costs_within_a_tenth_over_its_float32_size(card: ModelCard) -> None:
    for layer in (layer for layer in card.layers if layer.feature_map):
        maps = np.zeros((1, *layer.output_shape), np.float32)
        body = encode_response(BatchOutput(np.zeros((1, 10), np.float32), {layer.name: maps}))
        assert len(body) <= 1.1 * maps.nbytes, (layer.name, len(body), maps.nbytes)


def test_saliency_is_asked_for_and_answered_like_a_layer(pipeline: Pipeline) -> None:
    outputs = frozenset({"conv1", SALIENCY, f"{SALIENCY}.3"})
    body, headers = encode_request(batch(2), outputs)
    assert decode_request(body, headers, pipeline.backend_outputs, max_images=8).layers == outputs
    saliency = np.random.default_rng(4).normal(size=(2, 28, 28)).astype(np.float32)
    conv1 = np.zeros((2, 16, 28, 28), np.float32)
    maps = {"conv1": conv1, SALIENCY: saliency, f"{SALIENCY}.3": -saliency}
    answer = encode_response(BatchOutput(np.zeros((2, 10), np.float32), maps))
    received = decode_response(answer, 2, outputs).features
    np.testing.assert_array_equal(received[SALIENCY], saliency)
    np.testing.assert_array_equal(received[f"{SALIENCY}.3"], -saliency)


@pytest.mark.parametrize(
    ("body", "layers"),
    [
        (b"not a tensor archive", frozenset()),
        (encode_response(BatchOutput(np.zeros((2, 10), np.float32), {})), frozenset()),  # two rows for one image
        (encode_response(BatchOutput(np.zeros((1, 10), np.float32), {})), frozenset({"conv1"})),  # layer missing
        (encode_response(BatchOutput(np.zeros((1, 10), np.float32), {}))[:-1], frozenset()),  # cut short
        (encode_response(BatchOutput(np.zeros((1, 10), np.float32), {})) + b"\0" * 4, frozenset()),  # bytes after
        (b'{"probabilities": "10"}\n' + bytes(40), frozenset()),  # not a shape
        (b"[1, 10]\n" + bytes(40), frozenset()),  # not a map of shapes
    ],
)
def test_unreadable_or_short_answers_are_internal_errors(body: bytes, layers: frozenset[str]) -> None:
    with pytest.raises(ApiError) as error:
        decode_response(body, 1, layers)
    assert error.value.code == ErrorCode.internal_error


@pytest.mark.parametrize(
    ("tensor", "headers", "code"),
    [
        (np.zeros((2, 28, 28), np.float32), {}, ErrorCode.invalid_request),
        (np.zeros((1, 1, 28, 28), np.float64), {}, ErrorCode.invalid_request),
        (np.full((1, 1, 28, 28), np.nan, np.float32), {}, ErrorCode.invalid_pixels),
        (np.zeros((9, 1, 28, 28), np.float32), {}, ErrorCode.too_many_images),
        (np.zeros((1, 1, 28, 28), np.float32), {LAYERS_HEADER: "conv9"}, ErrorCode.unknown_feature_layer),
    ],
)
def test_bad_tensors_get_the_gateways_codes(
    tensor: np.ndarray, headers: dict[str, str], code: ErrorCode, card: ModelCard
) -> None:
    buffer = io.BytesIO()
    np.save(buffer, tensor)  # by hand: encode_request always sends float32
    with pytest.raises(ApiError) as error:
        decode_request(buffer.getvalue(), headers, card.feature_layers, max_images=8)
    assert error.value.code == code


def test_direct_json_pixels_go_through_the_pipeline(pipeline: Pipeline, card: ModelCard) -> None:
    images = np.random.default_rng(3).integers(0, 256, size=(3, 28, 28)).astype(np.uint8)
    body = {"instances": [{"pixels": image.tolist()} for image in images], "preprocess": "none", "top_k": 5}
    for sent in (body, orjson.dumps(body)):  # decoded by TorchServe already, or not
        direct = decode_direct_request(sent, pipeline)
        np.testing.assert_array_equal(direct.batch, card.input.normalize(images)[:, None])
        assert direct.request.top_k == 5 and direct.layers == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", ErrorCode.empty_body),
        (b"{not json", ErrorCode.invalid_json),
        ({"instances": [{"pixels": [[0] * 27] * 28}]}, ErrorCode.wrong_image_size),
        ({"instances": [{"pixels": [[0] * 28] * 27 + [[0] * 3]}]}, ErrorCode.invalid_pixels),
        ({"instances": [{"pixels": [[300] * 28] * 28}]}, ErrorCode.invalid_pixels),
        ({"instances": [{"pixels": [[0] * 28] * 28}] * 9}, ErrorCode.too_many_images),
        ({"instances": [{"image": "iVBORw0KGgo="}]}, ErrorCode.invalid_request),
        ({"instances": [{"pixels": [[0] * 28] * 28}], "preprocess": "auto"}, ErrorCode.invalid_request),
        ({"instances": [{"pixels": [[0] * 28] * 28}], "features": ["conv9"]}, ErrorCode.unknown_feature_layer),
        ({"instances": [{"pixels": [[0] * 28] * 28}], "explain": ["saliency"]}, ErrorCode.invalid_request),
        ({"instances": []}, ErrorCode.invalid_request),
        ([1, 2], ErrorCode.invalid_request),
    ],
)
def test_bad_direct_requests_get_the_gateways_codes(body: object, code: ErrorCode, pipeline: Pipeline) -> None:
    with pytest.raises(ApiError) as error:
        decode_direct_request(body, pipeline)
    assert error.value.code == code
