"""The probe set: chosen at training, recorded in the card, and a wrong answer to any probe refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model.card import file_sha256, load_card, save_card
from model.evaluate import predict_logits
from model.mnist import Split, load_test_split
from model.probes import check_probes, choose_probes, probe_batch, probe_images
from model.refusal import RefusalCode, VersionRefused
from tests.versions import copy_version, wrong_hash_version


def test_the_probes_are_the_first_digit_of_each_class_the_model_labels_right() -> None:
    labels = np.array([7, 2, 1, 0, 4, 1, 4, 9, 5, 9, 0, 6, 9, 0, 1, 5, 9, 7, 3, 4, 9, 6, 6, 5, 4, 0, 7, 4, 0, 1, 3, 8])
    images = np.arange(len(labels), dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    predicted = labels.copy()
    predicted[3] = 6  # the first 0 labelled wrong: the next 0 is its probe
    probes = choose_probes(Split(images, labels), predicted)
    assert [probe.label for probe in probes] == list(range(10))
    assert [probe.index for probe in probes] == [10, 2, 1, 18, 4, 8, 11, 0, 31, 7]
    np.testing.assert_array_equal(probe_images(probes), images[[probe.index for probe in probes]])
    assert [p.index for p in choose_probes(Split(images, labels), np.zeros_like(labels))] == [3]  # only 0s right


def test_the_shipped_card_records_the_probes_its_model_chose(artifact: Path, data_dir: Path) -> None:
    card = load_card(artifact)
    split = load_test_split(data_dir)
    module = torch.jit.load(str(artifact)).eval()
    assert card.probes == choose_probes(split, predict_logits(module, split.images, card.input).argmax(1).numpy())
    np.testing.assert_array_equal(probe_images(card.probes), split.images[[probe.index for probe in card.probes]])


def test_the_probe_batch_is_what_the_model_takes(artifact: Path) -> None:
    card = load_card(artifact)
    batch = probe_batch(card.probes, card.input)
    assert batch.shape == (10, 1, 28, 28) and batch.dtype == np.float32 and batch.flags.c_contiguous
    np.testing.assert_allclose(batch[:, 0], card.input.normalize(probe_images(card.probes).astype(np.float32)))


def one_hot(labels: list[int]) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[labels]


def test_right_answers_pass_and_a_wrong_one_is_refused(artifact: Path) -> None:
    card = load_card(artifact)
    labels = [probe.label for probe in card.probes]
    check_probes(card, lambda batch: one_hot(labels))
    swapped = [{3: 5, 5: 3}.get(label, label) for label in labels]
    with pytest.raises(VersionRefused) as caught:
        check_probes(card, lambda batch: one_hot(swapped))
    assert caught.value.code is RefusalCode.FAILED_PROBE and caught.value.version == card.version
    assert "2 of 10 probes wrong" in caught.value.message and "(a 3) answered 5" in caught.value.message


def test_a_card_without_probes_or_answers_of_another_shape_is_refused(artifact: Path) -> None:
    card = load_card(artifact)
    with pytest.raises(VersionRefused) as caught:
        check_probes(card.model_copy(update={"probes": []}), lambda batch: one_hot([]))
    assert caught.value.code is RefusalCode.NO_PROBES
    with pytest.raises(VersionRefused) as caught:
        check_probes(card, lambda batch: np.zeros((len(batch), 9), np.float32))
    assert caught.value.code is RefusalCode.WRONG_INPUT_SHAPE


def test_digits_probes_fills_in_a_cards_probe_set_and_refuses_a_changed_file(
    artifact: Path, data_dir: Path, tmp_path: Path
) -> None:
    copy = copy_version(artifact, tmp_path, "2.1.0")
    save_card(load_card(copy).model_copy(update={"probes": []}), copy)
    environment = {**os.environ, "DIGITS_DATA_DIR": str(data_dir)}
    command = [sys.executable, "-m", "digits_cli.main", "probes", str(copy)]
    subprocess.run(command, check=True, env=environment, capture_output=True, timeout=300)
    assert load_card(copy).probes == load_card(artifact).probes
    assert file_sha256(copy) == load_card(copy).sha256  # the artifact untouched
    changed = wrong_hash_version(artifact, tmp_path, "2.1.1")
    refused = subprocess.run(
        [*command[:-1], str(changed)], env=environment, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode != 0 and "hash_mismatch" in refused.stderr
