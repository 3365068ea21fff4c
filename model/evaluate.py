"""Accuracy of a TorchScript artifact on the MNIST test digits."""

from __future__ import annotations

import numpy as np
import torch

from model.card import Evaluation, InputSpec
from model.mnist import Split

EVAL_BATCH_SIZE = 1000


def normalize(images: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` images to the normalized float ``[N, 1, 28, 28]`` the model takes."""
    return torch.from_numpy(spec.normalize(images)).unsqueeze(1)  # a new array: the IDX buffer is read-only


@torch.no_grad()
def predict_labels(module: torch.nn.Module, images: np.ndarray, spec: InputSpec) -> np.ndarray:
    labels = []
    for start in range(0, len(images), EVAL_BATCH_SIZE):
        logits = module(normalize(images[start : start + EVAL_BATCH_SIZE], spec))
        labels.append(logits.argmax(dim=1).numpy())
    return np.concatenate(labels)


def evaluate(module: torch.nn.Module, split: Split, spec: InputSpec, num_classes: int = 10) -> Evaluation:
    predicted = predict_labels(module, split.images, spec)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (split.labels, predicted), 1)
    per_class = confusion.diagonal() / confusion.sum(axis=1).clip(min=1)
    return Evaluation(
        test_samples=len(split.labels),
        accuracy=float(confusion.diagonal().sum() / len(split.labels)),
        per_class_accuracy=[round(float(a), 6) for a in per_class],
        confusion_matrix=confusion.tolist(),
    )


def format_report(evaluation: Evaluation) -> str:
    """A per-class table for the terminal."""
    lines = [
        f"accuracy {evaluation.accuracy:.2%} on {evaluation.test_samples} test digits",
        "",
        "class  samples  accuracy",
    ]
    for label, (row, accuracy) in enumerate(
        zip(evaluation.confusion_matrix, evaluation.per_class_accuracy, strict=True)
    ):
        lines.append(f"{label:>5}  {sum(row):>7}  {accuracy:>8.2%}")
    return "\n".join(lines)
