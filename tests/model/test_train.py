from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.card import file_sha256, load_card
from model.mnist import FILES, Mnist, Split, load_mnist
from model.probes import check_probes
from model.repository import ModelRepository
from model.train import TrainConfig, random_distortion, train

# Each test trains (a short run); together about half a minute: the slow tier.
pytestmark = pytest.mark.slow

DIGITS = [sys.executable, "-m", "digits_cli.main"]


@pytest.fixture(scope="module")
def mnist(data_dir: Path) -> Mnist:
    """All of MNIST, but only 500 test digits, so that a smoke run takes seconds."""
    full = load_mnist(data_dir, download=False)
    return Mnist(train=full.train, test=Split(full.test.images[:500], full.test.labels[:500]), sha256=full.sha256)


def tiny_run(out: Path) -> TrainConfig:
    """One epoch on 384 digits, every one distorted (no undistorted last epochs), so the random draws count too."""
    return TrainConfig(out=out, epochs=1, clean_epochs=0, train_limit=384, progress=False)


def test_tiny_run_is_reproducible_and_loadable(mnist: Mnist, tmp_path: Path) -> None:
    first = train(mnist, tiny_run(tmp_path / "a" / "d.pt"))
    second = train(mnist, tiny_run(tmp_path / "b" / "d.pt"))
    assert first.training.epoch_losses == second.training.epoch_losses
    assert first.training.epoch_losses[0] > 0

    artifact = tmp_path / "a" / "d.pt"
    card = load_card(artifact)
    assert card.sha256 == file_sha256(artifact)
    assert card.training.seed == TrainConfig.seed and card.training.epochs == 1
    assert len(card.evaluation.confusion_matrix) == 10
    assert sum(map(sum, card.evaluation.confusion_matrix)) == card.evaluation.test_samples == 500
    assert set(card.training.data_sha256) == {file.gz_name for file in FILES.values()}
    module = torch.jit.load(str(artifact))
    assert module(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_other_seed_gives_another_run(mnist: Mnist, tmp_path: Path) -> None:
    a = train(mnist, TrainConfig(out=tmp_path / "a.pt", epochs=1, train_limit=128, seed=1, progress=False))
    b = train(mnist, TrainConfig(out=tmp_path / "b.pt", epochs=1, train_limit=128, seed=2, progress=False))
    assert a.training.epoch_losses != b.training.epoch_losses
    assert a.sha256 != b.sha256


@pytest.mark.parametrize("elastic", [0.0, 1.0])
def test_augmentation_keeps_shape_and_range(elastic: float) -> None:
    images = torch.rand(16, 1, 28, 28)
    out = random_distortion(images, torch.Generator().manual_seed(0), elastic)
    assert out.shape == images.shape
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert not torch.allclose(out, images)


def test_elastic_distortion_bends_what_the_affine_one_moves() -> None:
    """The same affine draws with and without the elastic field: the stroke is bent, not erased."""
    stroke = torch.zeros(1, 1, 28, 28)
    stroke[..., 6:22, 13:15] = 1.0
    affine = random_distortion(stroke, torch.Generator().manual_seed(5))
    bent = random_distortion(stroke, torch.Generator().manual_seed(5), elastic=1.5)
    assert not torch.allclose(affine, bent)
    assert abs(float(bent.sum() - affine.sum())) < 0.25 * float(affine.sum())  # moved, not erased


def test_the_card_records_probes_the_model_passes(mnist: Mnist, tmp_path: Path) -> None:
    card = train(mnist, TrainConfig(out=tmp_path / "d.pt", epochs=1, train_limit=384, progress=False, version="0.1.0"))
    assert card.version == "0.1.0" and card.probes
    assert all(mnist.test.labels[probe.index] == probe.label for probe in card.probes)
    module = torch.jit.load(str(tmp_path / "d.pt"))
    check_probes(card, lambda batch: module(torch.from_numpy(batch)).numpy())


def test_digits_train_version_writes_a_new_version_into_a_repository(data_dir: Path, tmp_path: Path) -> None:
    command = [*DIGITS, "train", "--version", "0.2.0", "--repository", str(tmp_path), "--epochs", "1"]
    environment = {**os.environ, "DIGITS_DATA_DIR": str(data_dir)}
    subprocess.run([*command, "--limit", "256"], check=True, env=environment, capture_output=True, timeout=600)
    repository = ModelRepository(tmp_path)
    assert repository.versions() == ["0.2.0"]
    assert repository.verify("0.2.0").card.training.train_samples == 256
    again = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "version 0.2.0 already exists" in again.stderr
    assert [entry.name for entry in tmp_path.iterdir()] == ["0.2.0"]
