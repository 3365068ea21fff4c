"""Record a model's drift baseline in its card: the training digits through the served preprocessing (input
statistics), and the held-out digits through preprocessing and the artifact (prediction statistics).

``digits train`` records it for the model it trains; ``digits baseline`` for an existing artifact, without
retraining (the shipped one's was recorded so).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model.baseline import Baseline
from model.card import ModelCard, load_card, save_card
from model.mnist import Mnist
from model.train import VALIDATION_SAMPLES
from service.core.preprocessing import InputStats, to_mnist_field

BATCH = 1000


def measure(digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each uint8 ``[n, 28, 28]`` digit's input statistics (``[n, 6]``) and auto-preprocessed field, as the gateway
    computes them for 28x28 gray values."""
    measured: list[InputStats] = []
    fields = np.stack([to_mnist_field(d.astype(np.float32), "auto", 0, None, measured) for d in digits])
    return np.array([stats[:-1] for stats in measured], dtype=np.float64), fields


@torch.no_grad()
def probabilities(module: torch.nn.Module, fields: np.ndarray, card: ModelCard) -> np.ndarray:
    chunks = []
    for start in range(0, len(fields), BATCH):
        batch = torch.from_numpy(card.input.normalize(fields[start : start + BATCH])).unsqueeze(1)
        chunks.append(torch.softmax(module(batch).float(), dim=1).numpy())
    return np.concatenate(chunks)


def baseline_of(artifact: Path, data: Mnist) -> Baseline:
    card = load_card(artifact)
    train_end = len(data.train.labels) - VALIDATION_SAMPLES
    inputs, _ = measure(data.train.images[:train_end])
    _, held_out = measure(data.train.images[train_end:])
    module = torch.jit.load(str(artifact), map_location="cpu").eval()
    return Baseline.of(
        inputs,
        probabilities(module, held_out, card),
        description=(
            f"inputs: the {train_end} training digits; predictions: the {VALIDATION_SAMPLES} held-out training "
            "digits through the artifact; both as 28x28 gray values through preprocess=auto"
        ),
    )


def record_baseline(artifact: Path, data: Mnist) -> ModelCard:
    """Measure the baseline and write it into the card beside ``artifact``."""
    card = load_card(artifact).model_copy(update={"baseline": baseline_of(artifact, data)})
    save_card(card, artifact)
    return card
