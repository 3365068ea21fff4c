"""The probe set: one MNIST test digit per class, recorded in the card at training with the label the model gives
it, and checked again whenever the model is loaded to serve. A model that loads and has the right shapes but
answers wrong (swapped labels, a bad build) fails here, before it takes traffic."""

from __future__ import annotations

import base64
from collections.abc import Callable

import numpy as np

from model.card import InputSpec, ModelCard, Probe
from model.mnist import Split
from model.refusal import RefusalCode, VersionRefused

PIXELS_SHAPE = (28, 28)

# A normalized float32 batch [n, 1, 28, 28] to one score per label [n, labels]: logits or probabilities.
Predict = Callable[[np.ndarray], np.ndarray]


def choose_probes(split: Split, predicted: np.ndarray, num_classes: int = 10) -> list[Probe]:
    """For each class, the first digit of ``split`` with that label which the model (``predicted``: its label for
    every digit) labels right: a deterministic choice that the model itself passes. A class whose digits the model
    never labels right (a smoke run's model) has no probe."""
    probes = []
    for label in range(num_classes):
        right = np.flatnonzero((split.labels == label) & (predicted == label))
        if len(right) == 0:
            continue
        index = int(right[0])
        pixels = np.ascontiguousarray(split.images[index], dtype=np.uint8)
        probes.append(Probe(index=index, label=label, pixels=base64.b64encode(pixels.tobytes()).decode("ascii")))
    return probes


def probe_images(probes: list[Probe]) -> np.ndarray:
    """The probes' gray values, uint8 ``[n, 28, 28]``."""
    rows = [np.frombuffer(base64.b64decode(probe.pixels), dtype=np.uint8) for probe in probes]
    return np.stack(rows).reshape(len(probes), *PIXELS_SHAPE) if rows else np.zeros((0, *PIXELS_SHAPE), np.uint8)


def probe_batch(probes: list[Probe], spec: InputSpec) -> np.ndarray:
    """The probes as the model takes them: normalized float32 ``[n, 1, 28, 28]``."""
    batch: np.ndarray = spec.normalize(probe_images(probes))[:, None].astype(np.float32)
    return np.ascontiguousarray(batch)


def check_probes(card: ModelCard, predict: Predict) -> None:
    """Run the card's probe set through ``predict`` and raise ``failed_probe`` if any answer is not its label
    (``no_probes`` if the card records none)."""
    if not card.probes:
        raise VersionRefused(RefusalCode.NO_PROBES, card.version, "the card records no probe set")
    scores = np.asarray(predict(probe_batch(card.probes, card.input)))
    if scores.shape != (len(card.probes), len(card.labels)):
        raise VersionRefused(
            RefusalCode.WRONG_INPUT_SHAPE,
            card.version,
            f"the model answered {len(card.probes)} probes with scores of shape {list(scores.shape)}, "
            f"not [{len(card.probes)}, {len(card.labels)}]",
        )
    answers = scores.argmax(axis=1)
    wrong = [
        f"MNIST test digit {probe.index} (a {probe.label}) answered {card.labels[answer]}"
        for probe, answer in zip(card.probes, answers, strict=True)
        if answer != probe.label
    ]
    if wrong:
        message = f"{len(wrong)} of {len(card.probes)} probes wrong: {'; '.join(wrong)}"
        raise VersionRefused(RefusalCode.FAILED_PROBE, card.version, message)
