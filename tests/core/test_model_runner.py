"""The model as every server runs it: fused by oneDNN Graph on CPU, in chunks, yet the same outputs as the plain
TorchScript file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from model.card import load_card
from model.device import resolve_device
from service.core.model_runner import CPU_CHUNKS, ModelRunner


@pytest.fixture(scope="module")
def runner(artifact: Path) -> ModelRunner:
    return ModelRunner(artifact, torch.device("cpu"), torch_threads=1)


def test_probabilities_match_the_plain_module(artifact: Path, runner: ModelRunner) -> None:
    batch = np.random.default_rng(0).normal(size=(5, 1, 28, 28)).astype(np.float32)
    plain = torch.jit.load(str(artifact), map_location="cpu").eval()
    with torch.inference_mode():
        expected = torch.softmax(plain(torch.from_numpy(batch)), dim=1).numpy()
    output = runner.run(batch, frozenset())
    assert output.features == {}
    assert output.probabilities.dtype == np.float32
    np.testing.assert_allclose(output.probabilities, expected, atol=1e-5)


@pytest.mark.parametrize("images", [1, 13, 47, 64])
def test_a_batch_of_any_size_runs_in_chunks_with_the_plain_module_outputs(
    artifact: Path, runner: ModelRunner, images: int
) -> None:
    batch = np.random.default_rng(images).normal(size=(images, 1, 28, 28)).astype(np.float32)
    card = load_card(artifact)
    plain = torch.jit.load(str(artifact), map_location="cpu").eval()
    with torch.inference_mode():
        logits, maps = plain.forward_features(torch.from_numpy(batch))
    output = runner.run(batch, frozenset(card.feature_layers))
    np.testing.assert_allclose(output.probabilities, torch.softmax(logits, dim=1).numpy(), atol=1e-5)
    for name, expected in maps.items():
        np.testing.assert_allclose(output.features[name], expected.numpy(), atol=1e-4)
    assert sum(CPU_CHUNKS) < 64  # 64 images take several chunks of the largest size


def test_an_axis_added_with_none_is_read_right(artifact: Path, runner: ModelRunner) -> None:
    fields = np.random.default_rng(1).normal(size=(16, 28, 28)).astype(np.float32)
    added = fields[:, None]  # numpy's stride for the new axis is 0
    assert added.strides[1] == 0
    expected = runner.run(np.ascontiguousarray(fields).reshape(16, 1, 28, 28), frozenset()).probabilities
    np.testing.assert_allclose(runner.run(added, frozenset()).probabilities, expected, atol=1e-6)


def test_features_are_the_asked_card_layers_with_their_shapes(artifact: Path, runner: ModelRunner) -> None:
    card = load_card(artifact)
    output = runner.run(np.zeros((3, 1, 28, 28), dtype=np.float32), frozenset(card.feature_layers))
    assert list(output.features) == card.feature_layers
    one = runner.run(np.zeros((1, 1, 28, 28), dtype=np.float32), frozenset(card.feature_layers[-1:]))
    assert list(one.features) == card.feature_layers[-1:]
    shapes = {layer.name: tuple(layer.output_shape) for layer in card.layers}
    for name, maps in output.features.items():
        assert maps.shape == (3, *shapes[name])
    np.testing.assert_allclose(output.probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_cuda_without_cuda_is_refused_with_the_setting_named() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"DIGITS_DEVICE=cuda .* use cpu or auto"):
        resolve_device("cuda", setting="DIGITS_DEVICE=")
    assert resolve_device("auto") == torch.device("cpu")
