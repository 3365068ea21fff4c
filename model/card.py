"""The model card: everything a server or a reader needs to know about an artifact."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
from pydantic import BaseModel, Field

from model.baseline import Baseline

if TYPE_CHECKING:
    import torch

LayerKind = Literal["conv", "maxpool", "flatten", "linear"]


class Layer(BaseModel):
    """One row of the layer table, read off the model itself."""

    name: str
    kind: LayerKind
    kernel_size: int | None = None
    stride: int | None = None
    padding: int | None = None
    output_shape: list[int] = Field(description="Per-sample output shape: [C, H, W] or [features]")
    feature_map: bool = Field(description="Whether forward_features returns this layer's output")


class InputSpec(BaseModel):
    shape: list[int] = [1, 28, 28]
    dtype: str = "float32"
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: float
    std: float
    description: str = (
        "Grayscale, ink bright on a black background (MNIST convention), scaled to value_range, "
        "then normalized as (x - mean) / std"
    )

    @overload
    def normalize(self, gray: np.ndarray) -> np.ndarray: ...

    @overload
    def normalize(self, gray: torch.Tensor) -> torch.Tensor: ...

    def normalize(self, gray: Any) -> Any:
        """Gray values 0-255, ink bright, to what the network takes, in float32: training and serving both call this."""
        return (gray * np.float32(1 / 255) - np.float32(self.mean)) * np.float32(1 / self.std)


# Fields added with model 2.0.0 are optional, so that earlier cards still load (a rolled-back model,
# or the previous model benchmarked side by side with this one).


class Training(BaseModel):
    seed: int
    epochs: int
    batch_size: int
    threads: int | None = Field(None, description="CPU threads (torch.set_num_threads) the job trained with")
    train_samples: int | None = None
    validation_samples: int | None = Field(None, description="Held out of the training digits, for calibration only")
    wall_time_seconds: float = Field(description="From the start of the job to the fitted temperature")
    cpu_seconds: float | None = Field(None, description="CPU time (user + system, all threads) over the same span")
    load_average: list[float] | None = Field(None, description="The machine's 1, 5 and 15 minute load at the end")
    device: str
    torch_version: str
    optimizer: str
    schedule: str
    data_sha256: dict[str, str]
    epoch_losses: list[float]
    epoch_test_accuracy: list[float] = Field([], description="Model 1 only: it reported test accuracy per epoch")
    epoch_validation_accuracy: list[float] = []


class ReliabilityBin(BaseModel):
    """Test digits whose confidence (top probability) lies in (lower, upper]."""

    lower: float
    upper: float
    count: int
    mean_confidence: float | None = Field(description="None for an empty bin")
    accuracy: float | None = Field(description="None for an empty bin")


class CalibrationMetrics(BaseModel):
    ece: float = Field(description="Expected calibration error over the reliability bins (15, equal width)")
    nll: float = Field(description="Mean negative log-likelihood of the true label, in nats")
    reliability: list[ReliabilityBin]


class Calibration(BaseModel):
    method: str = "temperature scaling: logits / T, T fitted by LBFGS on the validation NLL, baked into the last layer"
    temperature: float
    validation_samples: int
    uncalibrated: CalibrationMetrics = Field(
        description="On the test digits with T = 1; the calibrated figures, as served, are under evaluation"
    )


class Evaluation(BaseModel):
    test_samples: int
    accuracy: float
    # Measured by cards from model 2.0.0 on; None in earlier cards, which carry no calibration.
    calibration: CalibrationMetrics | None = None
    per_class_accuracy: list[float]
    confusion_matrix: list[list[int]] = Field(description="Rows: true label, columns: predicted label")


class Probe(BaseModel):
    """One MNIST test digit with the label the model must give it: checked before a version takes traffic."""

    index: int = Field(description="Its position in the MNIST test split")
    label: int
    pixels: str = Field(description="The 28x28 uint8 gray values, ink bright, row-major, base64")


class ModelCard(BaseModel):
    name: str
    version: str
    artifact: str = Field(description="File name of the TorchScript artifact beside this card")
    sha256: str
    parameter_count: int
    labels: list[str] = [str(d) for d in range(10)]
    input: InputSpec
    layers: list[Layer]
    training: Training
    calibration: Calibration | None = None
    evaluation: Evaluation = Field(description="The artifact as served (calibrated), on the MNIST test digits")
    # Recorded at training from model 2.1.0 on (added to 2.1.0's card afterwards); empty in earlier cards.
    probes: list[Probe] = Field([], description="One test digit per class the model labels right (model/probes.py)")
    baseline: Baseline | None = Field(None, description="What the drift monitor compares the served inputs with")

    @property
    def feature_layers(self) -> list[str]:
        return [layer.name for layer in self.layers if layer.feature_map]


def card_path_for(artifact: Path) -> Path:
    return artifact.with_suffix(".json")


def load_card(artifact: Path) -> ModelCard:
    return ModelCard.model_validate_json(card_path_for(artifact).read_text())


def save_card(card: ModelCard, artifact: Path) -> Path:
    path = card_path_for(artifact)
    path.write_text(card.model_dump_json(indent=2) + "\n")
    return path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
