"""The digits model behind BentoML, with BentoML's adaptive batching; run in the peers' virtualenv.

    PYTHONPATH=. DIGITS_ARTIFACT=model/artifacts/digits.pt \\
        ~/.cache/digits/peers-venv/bin/python -m bentoml serve bench.peers.bentoml_app:Digits --port 8000

BentoML's documented shape for a batchable model behind a richer request: a batchable API takes exactly one
argument, so the HTTP service (``Digits``) validates the /v1 request (JSON ``instances`` and ``preprocess``, or a
multipart ``file``, preprocessed ``auto``), decodes and normalizes it with the gateway's pipeline, and calls the
model service (``DigitsClassifier``, through ``bentoml.depends``), whose ``classify`` is batchable: BentoML's
dispatcher gathers the tensors of concurrent calls into one batch. The answer carries label, confidence and
probabilities per image. Knobs, from the environment (``bench.peers.settings``): ``DIGITS_BENTOML_WORKERS``
(processes of each service), ``DIGITS_BENTOML_MAX_BATCH_SIZE``, ``DIGITS_BENTOML_MAX_LATENCY_MS``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import bentoml
import numpy as np
from bentoml.exceptions import InvalidArgument

from bench.peers.digits_model import DigitsModel, load_pipeline, prediction_items
from bench.peers.settings import PeersSettings
from service.core.errors import ApiError
from service.core.schemas import Instance

SETTINGS = PeersSettings()
MAX_BATCH_SIZE = SETTINGS.bentoml_max_batch_size
MAX_LATENCY_MS = SETTINGS.bentoml_max_latency_ms
# As the gateway: no access log; BentoML's metrics stay on, as the gateway's do.
CONFIG: dict[str, Any] = {"workers": SETTINGS.bentoml_workers, "logging": {"access": {"enabled": False}}}


# bentoml lives in the peers' virtualenv only: untyped where mypy runs.
@bentoml.service(**CONFIG)
class DigitsClassifier:
    def __init__(self) -> None:
        self.model = DigitsModel.load()

    @bentoml.api(batchable=True, batch_dim=0, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)  # type: ignore[untyped-decorator]
    def classify(self, batch: np.ndarray) -> np.ndarray:
        return self.model.classify(batch.astype(np.float32, copy=False))  # the hop may widen it to float64


@bentoml.service(**CONFIG)
class Digits:
    classifier = bentoml.depends(DigitsClassifier)

    def __init__(self) -> None:
        self.pipeline = load_pipeline()

    @bentoml.api(route="/v1/predict")  # type: ignore[untyped-decorator]
    async def predict(
        self,
        instances: list[Instance] | None = None,
        preprocess: Literal["auto", "none"] = "auto",
        # BentoML makes a multipart upload of a Path argument but cannot make an optional one (Path | None): the
        # default stands outside the type, as pydantic leaves defaults unvalidated.
        file: Path = None,  # type: ignore[assignment]  # noqa: RUF013
    ) -> dict[str, Any]:
        if (file is None) == (not instances):
            raise InvalidArgument("send a JSON body with instances, or a multipart file")
        try:
            batch = self.pipeline.prepare(
                [file.read_bytes()] if file is not None else [instance.raw for instance in instances or []],
                "auto" if file is not None else preprocess,
            )
        except ApiError as exc:
            raise InvalidArgument(exc.message) from exc
        probabilities = await self.classifier.to_async.classify(batch)
        return {"predictions": prediction_items(probabilities)}
