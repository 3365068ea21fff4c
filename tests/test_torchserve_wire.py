"""The gateway <-> TorchServe formats: every accepted body, every refusal, and the lossless way back."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import orjson
import pytest

from model.card import ModelCard, load_card
from service.backends.base import BatchOutput
from service.errors import ApiError, ErrorCode
from service.preprocessing import Normalization
from service.responses import predict_body, predictions
from service.torchserve.wire import (
    FEATURE_FORMAT_HEADER,
    FEATURES_HEADER,
    TOP_K_HEADER,
    ParsedRequest,
    decode_output,
    encode_tensor,
    parse_request,
    tensor_headers,
)

OCTET = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def card(artifact: Path) -> ModelCard:
    return load_card(artifact)


@pytest.fixture(scope="module")
def normalization(card: ModelCard) -> Normalization:
    return Normalization(card.input.mean, card.input.std)


def digits(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 28, 28)).astype(np.uint8)


def parse(body: object, headers: dict[str, str], normalization: Normalization, layers: list[str]) -> ParsedRequest:
    return parse_request(body, headers, normalization, layers=layers, max_images=8)


def test_the_gateway_tensor_arrives_bit_for_bit(normalization: Normalization, card: ModelCard) -> None:
    batch = np.random.default_rng(1).normal(size=(5, 1, 28, 28)).astype(np.float32)
    parsed = parse(encode_tensor(batch), tensor_headers(with_features=True), normalization, card.feature_layers)
    np.testing.assert_array_equal(parsed.batch, batch)
    assert parsed.layers == card.feature_layers and parsed.options.feature_format == "array"
    plain = parse(encode_tensor(batch), tensor_headers(with_features=False), normalization, card.feature_layers)
    assert plain.layers == [] and plain.options.top_k == 1


def test_raw_bytes_and_json_pixels_are_normalized_like_the_gateway(
    normalization: Normalization, card: ModelCard
) -> None:
    images = digits(3)
    expected = np.stack([normalization.apply(image) for image in images])[:, None]
    raw = parse(images.tobytes(), OCTET, normalization, card.feature_layers)
    body = {"instances": [{"pixels": image.tolist()} for image in images], "preprocess": "none", "top_k": 5}
    as_json = parse(body, {"Content-Type": "application/json"}, normalization, card.feature_layers)
    undecoded = parse(orjson.dumps(body), {"Content-Type": "application/json"}, normalization, card.feature_layers)
    for parsed in (raw, as_json, undecoded):
        np.testing.assert_array_equal(parsed.batch, expected)
    assert as_json.options.top_k == 5 and raw.options.top_k == 3


def test_options_travel_in_headers_for_binary_bodies(normalization: Normalization, card: ModelCard) -> None:
    headers = {**OCTET, FEATURES_HEADER: f"{card.feature_layers[-1]}, {card.feature_layers[0]}",
               FEATURE_FORMAT_HEADER: "png", TOP_K_HEADER: "2"}  # fmt: skip
    parsed = parse(digits(1).tobytes(), headers, normalization, card.feature_layers)
    assert parsed.layers == [card.feature_layers[0], card.feature_layers[-1]]  # network order
    assert parsed.options.feature_format == "png" and parsed.options.top_k == 2


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (b"", OCTET, ErrorCode.empty_body),
        (b"\x00" * 100, OCTET, ErrorCode.wrong_image_size),
        (encode_tensor(np.zeros((2, 28, 28), np.float32)), OCTET, ErrorCode.invalid_request),
        (encode_tensor(np.full((1, 1, 28, 28), np.nan, np.float32)), OCTET, ErrorCode.invalid_pixels),
        (b"\x00" * 784 * 9, OCTET, ErrorCode.too_many_images),
        (b"\x00" * 784, {**OCTET, TOP_K_HEADER: "11"}, ErrorCode.invalid_top_k),
        (b"\x00" * 784, {**OCTET, FEATURES_HEADER: "fc9"}, ErrorCode.unknown_feature_layer),
        ({"instances": [{"pixels": [[0] * 27] * 28}]}, {}, ErrorCode.wrong_image_size),
        ({"instances": [{"pixels": [[0] * 28] * 27 + [[0] * 3]}]}, {}, ErrorCode.invalid_pixels),
        ({"instances": [{"pixels": [[300] * 28] * 28}]}, {}, ErrorCode.invalid_pixels),
        ({"instances": [{"image": "iVBORw0KGgo="}]}, {}, ErrorCode.invalid_request),
        ({"instances": [{"pixels": [[0] * 28] * 28}], "preprocess": "auto"}, {}, ErrorCode.invalid_request),
        ({"instances": []}, {}, ErrorCode.invalid_request),
        ([1, 2], {}, ErrorCode.invalid_request),
        (b"{not json", {"Content-Type": "application/json"}, ErrorCode.invalid_json),
    ],
)
def test_bad_requests_get_the_gateways_codes(
    body: object, headers: dict[str, str], code: ErrorCode, normalization: Normalization, card: ModelCard
) -> None:
    with pytest.raises(ApiError) as error:
        parse(body, headers, normalization, card.feature_layers)
    assert error.value.code == code


def test_decode_output_reads_the_response_body_back_losslessly(card: ModelCard) -> None:
    rng = np.random.default_rng(2)
    probabilities = rng.dirichlet(np.ones(10), size=4).astype(np.float32)
    features = {name: rng.normal(size=(4, 2, 3, 3)).astype(np.float32) for name in card.feature_layers}
    items = predictions(
        BatchOutput(probabilities, features), top_k=1, layers=card.feature_layers, feature_format="array"
    )
    output = decode_output(predict_body({"name": "digits", "version": "1"}, items), images=4)
    np.testing.assert_array_equal(output.probabilities, probabilities)
    assert output.features is not None and list(output.features) == card.feature_layers
    for name, maps in features.items():
        np.testing.assert_array_equal(output.features[name], maps)
    plain = predictions(BatchOutput(probabilities, None), top_k=1, layers=[], feature_format="array")
    assert decode_output(predict_body({"name": "digits", "version": "1"}, plain), images=4).features is None


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"predictions": [{"label": 1}]}', orjson.dumps({"predictions": []})],
)
def test_unreadable_or_short_responses_are_internal_errors(body: bytes) -> None:
    with pytest.raises(ApiError) as error:
        decode_output(body, images=1)
    assert error.value.code == ErrorCode.internal_error


def test_png_feature_maps_are_not_accepted_back() -> None:
    png = {"format": "png", "shape": [1, 1, 1], "data": base64.b64encode(b"x").decode()}
    body = orjson.dumps({"predictions": [{"probabilities": [0.1] * 10, "features": {"conv1": png}}]})
    with pytest.raises(ApiError):
        decode_output(body, images=1)
