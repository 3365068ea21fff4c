"""The protocol's view of the model, read off the model card: names, datatypes, shapes; name and version checks."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from model.card import load_card
from service.core.errors import ApiError, ErrorCode
from service.core.oip.metadata import INPUTS, ServedModel, server_metadata


@pytest.fixture(scope="module")
def model(artifact: Path) -> ServedModel:
    return ServedModel(load_card(artifact))


def test_every_feature_layer_of_the_card_is_an_output(model: ServedModel) -> None:
    metadata = model.metadata()
    outputs = {o["name"]: (o["datatype"], o["shape"]) for o in metadata["outputs"]}
    layers = {layer.name: layer.output_shape for layer in model.card.layers if layer.feature_map}
    assert list(outputs)[:4] == ["probabilities", "label", "top_k_labels", "top_k_probabilities"]
    assert {name: outputs[name] for name in layers} == {n: ("FP32", [-1, *s]) for n, s in layers.items()}
    assert "flatten" not in outputs and "fc1" not in outputs
    assert metadata["versions"] == [model.card.version]


@pytest.mark.parametrize(
    ("shape", "fits"),
    [([3, 28, 28], True), ([1, 1, 28, 28], True), ([28, 28], False), ([1, 2, 28, 28], False), ([1, 28, 27], False)],
)
def test_pixels_take_either_layout(shape: list[int], fits: bool) -> None:
    assert INPUTS["pixels"].fits(shape) is fits


def test_only_this_model_and_version_are_served(model: ServedModel) -> None:
    model.check("digits", None)
    model.check("digits", model.card.version)
    for name, version in (("mnist", None), ("digits", "0.0.1")):
        with pytest.raises(ApiError) as refused:
            model.check(name, version)
        assert refused.value.code is ErrorCode.unknown_model and refused.value.status == 404


def test_server_metadata_lists_the_binary_extension() -> None:
    installed = importlib.metadata.version("digits")
    assert server_metadata() == {
        "name": "digits",
        "version": installed,
        "extensions": ["binary_tensor_data", "model_repository"],
    }
