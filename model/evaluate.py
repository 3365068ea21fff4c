"""Accuracy and calibration of a TorchScript artifact on the MNIST test digits."""

from __future__ import annotations

import numpy as np
import torch

from model.calibration import calibration_metrics
from model.card import Evaluation, InputSpec
from model.mnist import Split

EVAL_BATCH_SIZE = 1000
CPU = torch.device("cpu")


def normalize(images: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` images to the normalized float ``[N, 1, 28, 28]`` the model takes."""
    return torch.from_numpy(spec.normalize(images)).unsqueeze(1)  # a new array: the IDX buffer is read-only


@torch.no_grad()
def predict_logits(
    module: torch.nn.Module, images: np.ndarray, spec: InputSpec, device: torch.device = CPU
) -> torch.Tensor:
    """Float32 logits on the CPU of uint8 ``[N, 28, 28]`` images, run on ``device`` (the module must be in eval
    mode there)."""
    chunks = [
        module(normalize(images[start : start + EVAL_BATCH_SIZE], spec).to(device)).float().cpu()
        for start in range(0, len(images), EVAL_BATCH_SIZE)
    ]
    return torch.cat(chunks)


def probabilities_of(logits: torch.Tensor) -> np.ndarray:
    """Softmax in float32, as the server computes it."""
    probabilities: np.ndarray = torch.softmax(logits.float(), dim=1).numpy()
    return probabilities


def evaluate(module: torch.nn.Module, split: Split, spec: InputSpec, num_classes: int = 10) -> Evaluation:
    probabilities = probabilities_of(predict_logits(module, split.images, spec))
    predicted = probabilities.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (split.labels, predicted), 1)
    per_class = confusion.diagonal() / confusion.sum(axis=1).clip(min=1)
    return Evaluation(
        test_samples=len(split.labels),
        accuracy=float(confusion.diagonal().sum() / len(split.labels)),
        calibration=calibration_metrics(probabilities, split.labels),
        per_class_accuracy=[round(float(a), 6) for a in per_class],
        confusion_matrix=confusion.tolist(),
    )


def format_report(evaluation: Evaluation) -> str:
    """Accuracy, ECE and NLL, then a per-class table, for the terminal."""
    summary = f"accuracy {evaluation.accuracy:.2%} on {evaluation.test_samples} test digits"
    if evaluation.calibration is not None:
        calibration = evaluation.calibration
        summary += f", ECE {calibration.ece:.2%} ({len(calibration.reliability)} bins), NLL {calibration.nll:.4f}"
    lines = [summary, "", "class  samples  accuracy"]
    for label, (row, accuracy) in enumerate(
        zip(evaluation.confusion_matrix, evaluation.per_class_accuracy, strict=True)
    ):
        lines.append(f"{label:>5}  {sum(row):>7}  {accuracy:>8.2%}")
    return "\n".join(lines)
