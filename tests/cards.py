"""Artifacts and cards for tests: the shipped artifact beside a card like an earlier model's, other networks."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from model.card import ModelCard, card_path_for, file_sha256, load_card, save_card
from model.layers import describe_layers
from model.network import ConvNet, parameter_count
from model.settings import DEFAULT_ARTIFACT


def uncalibrated_artifact(artifact: Path, directory: Path) -> tuple[Path, ModelCard]:
    """A copy of ``artifact`` whose card has no calibration figures, as model 1.0.0's card had none."""
    copy = directory / artifact.name
    shutil.copy(artifact, copy)
    card = load_card(artifact)
    card.calibration = None
    card.evaluation.calibration = None
    card_path_for(copy).write_text(card.model_dump_json())
    return copy, card


def network_artifact(network: ConvNet, path: Path, version: str) -> Path:
    """``network`` frozen and scripted at ``path`` (as training exports it), beside a card: the shipped card's
    input spec and figures, this network's layer table."""
    network.eval()
    torch.jit.freeze(torch.jit.script(network), preserved_attrs=["forward_features"]).save(str(path))
    card = load_card(DEFAULT_ARTIFACT).model_copy(
        update={
            "version": version,
            "artifact": path.name,
            "sha256": file_sha256(path),
            "parameter_count": parameter_count(network),
            "layers": describe_layers(network),
        }
    )
    save_card(card, path)
    return path
