"""TorchServe's handler of the digits model (packed into digits.mar as ``handler.py``).

TorchServe collects up to ``batchSize`` requests (model-config.yaml) and calls :meth:`DigitsHandler.handle`
with all of them; their images run through the model as one batch and each request gets its own response:
the gateway's predict body, or the gateway's error body with that error's status. The formats are in
:mod:`service.torchserve.wire`; normalization comes from the model card packed beside the TorchScript file,
and feature maps are encoded by the gateway's own :func:`service.features.encode_feature_map`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from model.card import load_card
from service.errors import ApiError, error_body
from service.model_runner import ModelRunner
from service.preprocessing import Normalization
from service.responses import predict_body, predictions
from service.torchserve.wire import ParsedRequest, parse_request
from service.torchserve.worker import HandlerConfig, worker_device

log = logging.getLogger(__name__)

JSON = "application/json"


class DigitsHandler:
    """The one class TorchServe looks for in this module: ``initialize`` once per worker, then ``handle``."""

    def __init__(self) -> None:
        self._runner: ModelRunner | None = None
        self._layers: list[str] = []
        self._normalization = Normalization(0.0, 1.0)
        self._model_ref: dict[str, str] = {}
        self._config = HandlerConfig()

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        artifact = Path(properties["model_dir"]) / context.manifest["model"]["serializedFile"]
        card = load_card(artifact)
        self._config = HandlerConfig.model_validate((context.model_yaml_config or {}).get("handler", {}))
        self._layers = card.feature_layers
        self._normalization = Normalization(card.input.mean, card.input.std)
        self._model_ref = {"name": card.name, "version": card.version}
        self._runner = ModelRunner(artifact, worker_device(properties.get("gpu_id")), self._config.torch_threads)
        log.info("%s %s ready on %s, %d thread(s)", card.name, card.version, self._runner.device,
                 self._config.torch_threads)  # fmt: skip

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes]:
        assert self._runner is not None, "TorchServe calls initialize() first"
        parsed = [self._parse(request, context.get_all_request_header(i)) for i, request in enumerate(data)]
        ready = [item for item in parsed if isinstance(item, ParsedRequest)]
        output = None
        if ready:
            batch = np.concatenate([item.batch for item in ready])
            output = self._runner.run(batch, with_features=any(item.layers for item in ready))
        responses: list[bytes] = []
        offset = 0
        for i, item in enumerate(parsed):
            context.set_response_content_type(i, JSON)
            if isinstance(item, ApiError):
                context.set_response_status(item.status, item.message, i)
                responses.append(error_body(item.code, item.message, item.index))
                continue
            assert output is not None
            n = len(item.batch)
            items = predictions(
                output.slice(offset, offset + n),
                top_k=item.options.top_k,
                layers=item.layers,
                feature_format=item.options.feature_format,
            )
            offset += n
            responses.append(predict_body(self._model_ref, items))
        return responses

    def _parse(self, request: dict[str, Any], headers: dict[str, Any]) -> ParsedRequest | ApiError:
        body = request.get("data", request.get("body"))
        try:
            return parse_request(
                body,
                headers,
                self._normalization,
                layers=self._layers,
                max_images=self._config.max_images_per_request,
            )
        except ApiError as error:
            return error
