"""The trained network to a served artifact: temperature baked in, scripted, frozen, carded."""

from __future__ import annotations

from pathlib import Path

import torch

from model.calibration import calibration_metrics
from model.card import Calibration, InputSpec, ModelCard, Training, file_sha256, save_card
from model.evaluate import evaluate, predict_logits, probabilities_of
from model.layers import describe_layers
from model.mnist import Mnist
from model.network import ConvNet, parameter_count
from model.probes import choose_probes

MODEL_NAME = "digits-convnet"
MODEL_VERSION = "2.1.0"


def export(
    model: ConvNet,
    data: Mnist,
    out: Path,
    training: Training,
    *,
    spec: InputSpec,
    temperature: float,
    validation_samples: int,
    version: str = MODEL_VERSION,
) -> ModelCard:
    """Write the TorchScript artifact to ``out`` and its card beside it; evaluate exactly what was written."""
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    model.divide_logits(temperature)
    # Freezing folds batch norm into the convolutions: the served graph has conv2d with a bias, then ReLU.
    scripted = torch.jit.freeze(torch.jit.script(model), preserved_attrs=["forward_features"])
    out.parent.mkdir(parents=True, exist_ok=True)
    scripted.save(str(out))
    served = torch.jit.load(str(out), map_location="cpu").eval()
    served_logits = predict_logits(served, data.test.images, spec)
    uncalibrated = served_logits * temperature
    card = ModelCard(
        name=MODEL_NAME,
        version=version,
        artifact=out.name,
        sha256=file_sha256(out),
        parameter_count=parameter_count(model),
        input=spec,
        layers=describe_layers(model),
        training=training,
        calibration=Calibration(
            temperature=round(temperature, 6),
            validation_samples=validation_samples,
            uncalibrated=calibration_metrics(probabilities_of(uncalibrated), data.test.labels),
        ),
        evaluation=evaluate(served, data.test, spec),
        probes=choose_probes(data.test, served_logits.argmax(dim=1).numpy()),
    )
    save_card(card, out)
    return card
