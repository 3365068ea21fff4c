"""The shipped load test digits: what they look like, their labels, and that the generator made them."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from loadtest.make_samples import ModelCheck, select_samples, write_samples
from loadtest.samples import SAMPLES_DIR, Sample, load_samples, read_manifest
from model.mnist import load_test_split


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return load_samples()


def test_a_few_dozen_digits_balanced_over_the_classes(samples: list[Sample]) -> None:
    assert 30 <= len(samples) <= 60
    counts = Counter(sample.label for sample in samples)
    assert sorted(counts) == list(range(10))
    assert len(set(counts.values())) == 1


def test_scans_are_dark_ink_on_white_at_varied_sizes(samples: list[Sample]) -> None:
    sizes = set()
    for sample in samples:
        with Image.open(io.BytesIO(sample.png)) as image:
            assert image.format == "PNG"
            gray = np.asarray(image.convert("L"))
        sizes.add(gray.shape)
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        assert np.median(border) > 240, f"{sample.name}: paper is not white"
        assert gray.min() < 60, f"{sample.name}: no dark ink"
    assert len(sizes) >= 5


def test_pixels_are_a_28x28_mnist_style_field(samples: list[Sample]) -> None:
    for sample in samples:
        pixels = np.asarray(sample.pixels)
        assert pixels.shape == (28, 28)
        assert pixels.min() >= 0 and pixels.max() <= 255
        assert pixels[0].max() < 30 and pixels[:, 0].max() < 30, f"{sample.name}: border is not black"
        assert pixels.max() > 200, f"{sample.name}: no bright ink"


def test_labels_are_the_mnist_test_labels(data_dir: Path) -> None:
    split = load_test_split(data_dir)
    for entry in read_manifest().samples:
        assert entry.label == int(split.labels[entry.mnist_index]), entry.file


def test_the_committed_samples_are_what_the_generator_writes(data_dir: Path, artifact: Path, tmp_path: Path) -> None:
    manifest = read_manifest()
    per_class = len(manifest.samples) // 10
    chosen = select_samples(load_test_split(data_dir), per_class, ModelCheck(artifact))
    written = write_samples(chosen, tmp_path, source=manifest.source)
    assert written == manifest
    for entry in manifest.samples:
        assert (tmp_path / entry.file).read_bytes() == (SAMPLES_DIR / entry.file).read_bytes(), entry.file


def test_the_model_check_rejects_a_wrong_label(artifact: Path, samples: list[Sample]) -> None:
    check = ModelCheck(artifact)
    sample = samples[0]
    assert check(sample)
    assert not check(Sample(sample.name, (sample.label + 1) % 10, sample.png))


def test_a_missing_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"loadtest\.make_samples"):
        load_samples(tmp_path)
