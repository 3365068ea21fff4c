"""Checks of ``explain`` and the layers endpoint against a real gateway, whatever its backend.

Each check takes the gateway's base URL and returns what it read, so that a test can also compare two backends.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import torch
from PIL import Image

from loadtest.samples import Sample, load_samples
from model.card import load_card
from model.settings import DEFAULT_ARTIFACT
from service.core.pipeline import Pipeline
from service.core.schemas import LayerResponse, PredictResponse
from service.core.types import Limits

CARD = load_card(DEFAULT_ARTIFACT)
PIPELINE = Pipeline(CARD, Limits(max_images=64, max_pixels=16_000_000))
# Shipped scans of several sizes (28 to 160 px), dark ink on white paper.
SAMPLES = [load_samples()[i] for i in (0, 3, 6, 9)]
CONV1_ATOL = 1e-4


def decoded(encoded: dict[str, Any]) -> np.ndarray:
    """An ``array`` as float32 of its shape, a ``png`` as its uint8 pixels."""
    data = base64.b64decode(encoded["data"])
    if encoded["format"] == "array":
        return np.frombuffer(data, "<f4").reshape(encoded["shape"])
    return np.asarray(Image.open(io.BytesIO(data)))


@dataclass(frozen=True)
class Explained:
    sample: Sample
    prediction: dict[str, Any]

    @property
    def input(self) -> np.ndarray:
        return decoded(self.prediction["explain"]["input"])

    @property
    def saliency(self) -> np.ndarray:
        return decoded(self.prediction["explain"]["saliency"])

    @property
    def conv1(self) -> np.ndarray:
        return decoded(self.prediction["features"]["conv1"])


def explain_samples(url: str, explain: str = "input,saliency", **params: str) -> list[Explained]:
    """Every sample uploaded as a file (multipart, query options), explained, with conv1's feature maps."""
    files = [("file", (sample.name, sample.png, "image/png")) for sample in SAMPLES]
    response = httpx.post(
        f"{url}/v1/predict", files=files, params={"explain": explain, "features": "conv1", **params}, timeout=60
    )
    assert response.status_code == 200, response.text
    body = PredictResponse.model_validate_json(response.content)
    assert [p.label for p in body.predictions] == [sample.label for sample in SAMPLES]
    return [Explained(s, p) for s, p in zip(SAMPLES, response.json()["predictions"], strict=True)]


def check_input_is_the_field(url: str) -> list[Explained]:
    """``input`` is exactly the field the core's preprocessing makes of the same file."""
    explained = explain_samples(url)
    for item in explained:
        assert item.prediction["explain"]["input"]["shape"] == [28, 28]
        np.testing.assert_array_equal(item.input, PIPELINE.field(item.sample.png, "auto", 0))
    return explained


def check_saliency(explained: list[Explained]) -> None:
    """28x28, finite, for the predicted label, most of its mass on the ink."""
    for item in explained:
        saliency, field = item.saliency, item.input
        assert saliency.shape == (28, 28) and np.isfinite(saliency).all()
        assert item.prediction["explain"]["saliency"]["label"] == item.prediction["label"]
        mass = np.abs(saliency)
        assert mass.sum() > 0
        assert mass[field >= 64].sum() / mass.sum() > 0.8, item.sample.name


def conv1_parameters(url: str) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    response = httpx.get(f"{url}/v1/models/digits/layers/conv1", timeout=30)
    assert response.status_code == 200, response.text
    layer = LayerResponse.model_validate_json(response.content)
    assert layer.kind == "conv" and layer.weight is not None and layer.bias is not None
    assert layer.stride is not None and layer.padding is not None
    weight = torch.from_numpy(decoded(layer.weight.model_dump()).copy())
    bias = torch.from_numpy(decoded(layer.bias.model_dump()).copy())
    return weight, bias, layer.stride, layer.padding


def check_weights_reproduce_conv1(url: str, explained: list[Explained]) -> None:
    """relu(conv2d(normalized input, weight, bias)) from the endpoint equals the served conv1 maps within 1e-4."""
    weight, bias, stride, padding = conv1_parameters(url)
    conv1 = next(layer for layer in CARD.layers if layer.name == "conv1")
    assert conv1.kernel_size is not None
    channels, k = conv1.output_shape[0], conv1.kernel_size
    assert list(weight.shape) == [channels, 1, k, k] and list(bias.shape) == [channels]
    for item in explained:
        x = torch.from_numpy(CARD.input.normalize(item.input.copy()))[None, None]
        computed = torch.relu(torch.nn.functional.conv2d(x, weight, bias, stride=stride, padding=padding))[0]
        np.testing.assert_allclose(computed.numpy(), item.conv1, atol=CONV1_ATOL, rtol=0)
