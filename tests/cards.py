"""Model cards for tests: the shipped artifact beside a card that carries what a later model's card has."""

from __future__ import annotations

import shutil
from pathlib import Path

from model.card import CalibrationMetrics, ModelCard, ReliabilityBin, card_path_for, load_card


def calibrated_artifact(artifact: Path, directory: Path) -> tuple[Path, ModelCard]:
    """A copy of ``artifact`` whose card has calibration figures (made up for the test: model 1.0.0 has none)."""
    copy = directory / artifact.name
    shutil.copy(artifact, copy)
    card = load_card(artifact)
    filled = {10: (40, 0.72, 0.65), 12: (60, 0.85, 0.8), 14: (9900, 0.995, 0.998)}  # count, confidence, accuracy
    bins = []
    for i in range(15):
        count, confidence, accuracy = filled.get(i, (0, None, None))
        bins.append(ReliabilityBin(lower=i / 15, upper=(i + 1) / 15, count=count, mean_confidence=confidence,
                                   accuracy=accuracy))  # fmt: skip
    card.evaluation.calibration = CalibrationMetrics(ece=0.0065, nll=0.012, reliability=bins)
    card_path_for(copy).write_text(card.model_dump_json())
    return copy, card
