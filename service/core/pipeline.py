"""The one way from a request's inputs to its predictions, in the spirit of LitServe's ``LitAPI``:

    decode -> MNIST field -> normalize -> (batch) -> model -> predictions

The gateway's predict route, the TorchServe handler, the benchmark's model loop and naive peer, and the
sample maker all go through a :class:`Pipeline`; only where the model runs differs (the gateway batches
requests and hands them to a backend, the others call a :class:`ModelRunner` or the module directly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.card import ModelCard
from service.core.decoding import decode_base64, decode_image
from service.core.errors import ApiError, ErrorCode
from service.core.explanations import FieldTrace, explanation, saliency_output, saliency_outputs
from service.core.features import resolve_layers
from service.core.predictions import predict_body, predictions
from service.core.preprocessing import FIELD, InputStats, Mode, StageRecorder, to_mnist_field
from service.core.schemas import PredictOptions
from service.core.types import BatchOutput, Limits, RawInput


@dataclass(frozen=True)
class Pipeline:
    card: ModelCard
    limits: Limits

    @property
    def model_ref(self) -> dict[str, str]:
        return {"name": self.card.name, "version": self.card.version}

    def layers(self, requested: list[str] | None) -> list[str]:
        """The feature layers a request asks for, in network order (``["all"]``: every one)."""
        return resolve_layers(requested, self.card.feature_layers)

    def decode(self, raw: RawInput, index: int) -> np.ndarray:
        """A grayscale 2-D array of one input: an image file, its base64 text, or gray values."""
        if isinstance(raw, str):
            raw = decode_base64(raw, index)
        if isinstance(raw, bytes):
            return decode_image(raw, max_pixels=self.limits.max_pixels, index=index)
        if raw.size > self.limits.max_pixels:
            raise ApiError(
                ErrorCode.image_too_large, f"pixels has more than {self.limits.max_pixels} values", index=index
            )
        return raw

    def field(
        self,
        raw: RawInput,
        preprocess: Mode,
        index: int,
        stages: StageRecorder | None = None,
        measured: list[InputStats] | None = None,
    ) -> np.ndarray:
        """The 28x28 MNIST-style field (values 0-255, ink bright) of one input; ``stages`` keeps each step's image,
        ``measured`` gets the input's statistics (for the drift monitor)."""
        return to_mnist_field(self.decode(raw, index), preprocess, index, stages, measured)

    def prepare(
        self, inputs: Sequence[RawInput], preprocess: Mode, measured: list[InputStats] | None = None
    ) -> np.ndarray:
        """Every input decoded, made an MNIST field and normalized: the float32 ``[n, 1, 28, 28]`` batch."""
        return self.normalize([self.field(raw, preprocess, i, None, measured) for i, raw in enumerate(inputs)])

    def trace(
        self, inputs: Sequence[RawInput], preprocess: Mode, stages: bool, measured: list[InputStats] | None = None
    ) -> list[FieldTrace]:
        """Every input's field, kept for an explanation, with its preprocessing stages when ``stages``."""
        traces = []
        for index, raw in enumerate(inputs):
            recorder = StageRecorder() if stages else None
            traces.append(FieldTrace(self.field(raw, preprocess, index, recorder, measured), recorder))
        return traces

    def normalize(self, fields: Sequence[np.ndarray]) -> np.ndarray:
        """28x28 fields normalized into the float32 ``[n, 1, 28, 28]`` batch."""
        if not fields:
            return np.empty((0, 1, FIELD, FIELD), dtype=np.float32)
        batch: np.ndarray = self.card.input.normalize(np.stack(fields).astype(np.float32, copy=False))
        return batch.reshape(len(fields), 1, FIELD, FIELD)

    @property
    def backend_outputs(self) -> list[str]:
        """Every output a backend may be asked for: the feature layers, then the saliency maps."""
        return [*self.card.feature_layers, *saliency_outputs(len(self.card.labels))]

    def outputs(self, layers: Sequence[str], options: PredictOptions) -> frozenset[str]:
        """What a backend computes for a request: its feature layers, and saliency when explain asks for it."""
        wanted = frozenset(layers)
        if options.explain and "saliency" in options.explain:
            return wanted | {saliency_output(options.saliency_label)}
        return wanted

    def predictions(
        self,
        output: BatchOutput,
        options: PredictOptions,
        layers: list[str],
        traces: Sequence[FieldTrace] | None = None,
    ) -> list[dict[str, Any]]:
        """The public predictions, with the explanation of each when the request has ``explain`` (and traces)."""
        items = predictions(output, top_k=options.top_k, layers=layers, feature_format=options.feature_format)
        if options.explain and traces is not None:
            saliency = output.features.get(saliency_output(options.saliency_label))
            for i, (item, trace) in enumerate(zip(items, traces, strict=True)):
                maps = None if saliency is None else saliency[i]
                label = item["label"] if options.saliency_label is None else options.saliency_label
                item["explain"] = explanation(options.explain, trace, maps, label, options.feature_format)
        return items

    def body(self, items: list[dict[str, Any]]) -> bytes:
        """The public predict response body."""
        return predict_body(self.model_ref, items)
