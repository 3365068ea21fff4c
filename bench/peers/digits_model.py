"""What the peers serve, from the gateway's own core: its pipeline, its model runner, its request schema.

Settings come from the gateway's ``DIGITS_*`` variables (``DIGITS_ARTIFACT``, ``DIGITS_TORCH_THREADS``). The
LitServe and BentoML peers import this module in their own virtualenv, with the repository on ``PYTHONPATH``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from model.card import load_card
from service.core.errors import from_validation_errors
from service.core.model_runner import ModelRunner
from service.core.pipeline import Pipeline
from service.core.preprocessing import Mode
from service.core.schemas import PredictRequest
from service.core.settings import Settings
from service.core.types import Limits

NO_LAYERS: frozenset[str] = frozenset()


def load_pipeline() -> Pipeline:
    settings = Settings()
    return Pipeline(
        load_card(settings.model.artifact),
        Limits(settings.limits.max_images_per_request, settings.limits.max_image_pixels),
    )


def prediction_items(probabilities: np.ndarray) -> list[dict[str, Any]]:
    """The fields of the gateway's predictions that a plain model server gives: label, confidence, probabilities."""
    return [
        {"label": int(row.argmax()), "confidence": float(row.max()), "probabilities": row.tolist()}
        for row in probabilities
    ]


@dataclass(frozen=True)
class DigitsModel:
    """The pipeline and the model the way the gateway runs them (``ModelRunner``, CPU)."""

    pipeline: Pipeline
    runner: ModelRunner

    @classmethod
    def load(cls) -> DigitsModel:
        settings = Settings()
        return cls(
            load_pipeline(), ModelRunner(settings.model.artifact, torch.device("cpu"), settings.model.torch_threads)
        )

    def prepare_json(self, body: dict[str, Any]) -> np.ndarray:
        try:
            request = PredictRequest.model_validate(body)
        except ValidationError as exc:
            raise from_validation_errors(exc.errors()) from exc
        return self.pipeline.prepare([instance.raw for instance in request.instances], request.preprocess)

    def prepare_file(self, data: bytes, preprocess: Mode) -> np.ndarray:
        return self.pipeline.prepare([data], preprocess)

    def classify(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities ``[n, 10]`` of a normalized ``[n, 1, 28, 28]`` batch."""
        return self.runner.run(batch, NO_LAYERS).probabilities
