"""The one pipeline: the card's normalization is the one training and serving use, and every input kind agrees."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
import torch

from model.card import ModelCard, load_card
from model.evaluate import normalize as evaluation_input
from service.core.errors import ApiError, ErrorCode
from service.core.pipeline import Pipeline
from service.core.types import Limits
from tests.uploads import encode


@pytest.fixture(scope="module")
def card(artifact: Path) -> ModelCard:
    return load_card(artifact)


@pytest.fixture(scope="module")
def pipeline(card: ModelCard) -> Pipeline:
    return Pipeline(card, Limits(max_images=8, max_pixels=1_000_000))


def digits(n: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, 28, 28)).astype(np.uint8)


def test_serving_normalizes_exactly_as_the_card_and_the_evaluation(pipeline: Pipeline, card: ModelCard) -> None:
    images = digits(3)
    served = pipeline.prepare([image.astype(np.float32) for image in images], "none")
    np.testing.assert_array_equal(served, card.input.normalize(images)[:, None])
    np.testing.assert_array_equal(served, evaluation_input(images, card.input).numpy())
    trained = card.input.normalize(torch.from_numpy(images.astype(np.float32)))  # the training loop's call
    np.testing.assert_array_equal(served[:, 0], trained.numpy())
    white = np.float32((1 - card.input.mean) / card.input.std)
    assert served.dtype == np.float32 and np.isclose(card.input.normalize(np.full(1, 255.0))[0], white)


def test_an_image_file_and_its_base64_text_give_the_same_batch(pipeline: Pipeline) -> None:
    png = encode(255 - digits(1)[0])
    as_text = base64.b64encode(png).decode()
    np.testing.assert_array_equal(pipeline.prepare([png], "auto"), pipeline.prepare([as_text], "auto"))


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not base64!", ErrorCode.invalid_base64),
        (b"not an image", ErrorCode.image_decode_failed),
        (np.zeros((2000, 1000), np.float32), ErrorCode.image_too_large),
        (np.zeros((27, 28), np.float32), ErrorCode.wrong_image_size),
    ],
)
def test_bad_inputs_name_their_index(pipeline: Pipeline, raw: object, code: ErrorCode) -> None:
    good = np.zeros((28, 28), np.float32)
    with pytest.raises(ApiError) as error:
        pipeline.prepare([good, raw], "none")  # type: ignore[list-item]
    assert error.value.code == code and error.value.index == 1


def test_layers_come_in_network_order_and_unknown_ones_are_refused(pipeline: Pipeline, card: ModelCard) -> None:
    assert pipeline.layers([card.feature_layers[-1], card.feature_layers[0]]) == [
        card.feature_layers[0],
        card.feature_layers[-1],
    ]
    assert pipeline.layers(["all"]) == card.feature_layers and pipeline.layers(None) == []
    with pytest.raises(ApiError) as error:
        pipeline.layers(["fc9"])
    assert error.value.code == ErrorCode.unknown_feature_layer
