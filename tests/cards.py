"""Model cards for tests: the shipped artifact beside a card like an earlier model's."""

from __future__ import annotations

import shutil
from pathlib import Path

from model.card import ModelCard, card_path_for, load_card


def uncalibrated_artifact(artifact: Path, directory: Path) -> tuple[Path, ModelCard]:
    """A copy of ``artifact`` whose card has no calibration figures, as model 1.0.0's card had none."""
    copy = directory / artifact.name
    shutil.copy(artifact, copy)
    card = load_card(artifact)
    card.calibration = None
    card.evaluation.calibration = None
    card_path_for(copy).write_text(card.model_dump_json())
    return copy, card
