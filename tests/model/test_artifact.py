"""The shipped artifact: integrity, and the accuracy its card claims."""

from __future__ import annotations

from pathlib import Path

import torch

from model.card import file_sha256, load_card
from model.evaluate import evaluate
from model.mnist import load_test_split

TARGET_ACCURACY = 0.997  # issue 13: 99.70 % on the 10,000 MNIST test digits


def test_sha256_matches_the_card(artifact: Path) -> None:
    card = load_card(artifact)
    assert card.artifact == artifact.name
    assert file_sha256(artifact) == card.sha256


def test_accuracy_meets_the_target_and_equals_the_card(artifact: Path, data_dir: Path) -> None:
    card = load_card(artifact)
    module = torch.jit.load(str(artifact)).eval()
    evaluation = evaluate(module, load_test_split(data_dir), card.input)
    assert evaluation.accuracy >= TARGET_ACCURACY
    assert evaluation.accuracy == card.evaluation.accuracy
    assert evaluation.confusion_matrix == card.evaluation.confusion_matrix
