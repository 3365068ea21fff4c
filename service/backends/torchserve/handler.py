"""TorchServe's handler of the digits model (packed into digits.mar as ``handler.py``).

TorchServe collects up to ``batchSize`` requests (model-config.yaml) and calls :meth:`DigitsHandler.handle`
with all of them; their images run through the model as one batch, with the union of the feature layers they
ask for, and each request gets its own answer: tensors for the gateway, the public predict body for a direct
JSON client, or the error body with that error's status (:mod:`service.backends.torchserve.wire`). Inputs go
through the same :class:`~service.core.pipeline.Pipeline` as in the gateway, with the card packed beside the
TorchScript file. Nothing here imports a web framework.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from model.card import load_card
from service.backends.torchserve.wire import (
    TENSOR_CONTENT_TYPE,
    DirectRequest,
    TensorRequest,
    decode_direct_request,
    decode_request,
    encode_response,
    is_tensor,
)
from service.backends.torchserve.worker import HandlerConfig, worker_device
from service.core.errors import ApiError
from service.core.model_runner import ModelRunner
from service.core.pipeline import Pipeline
from service.core.preprocessing import FIELD
from service.core.types import BatchOutput, Limits

log = logging.getLogger(__name__)

JSON = "application/json"


class DigitsHandler:
    """The one class TorchServe looks for in this module: ``initialize`` once per worker, then ``handle``."""

    def __init__(self) -> None:
        self._runner: ModelRunner | None = None
        self._pipeline: Pipeline | None = None

    def initialize(self, context: Any) -> None:
        properties = context.system_properties
        artifact = Path(properties["model_dir"]) / context.manifest["model"]["serializedFile"]
        card = load_card(artifact)
        config = HandlerConfig.model_validate((context.model_yaml_config or {}).get("handler", {}))
        # Direct clients send 28x28 pixels only: the pixel limit is that of one field.
        self._pipeline = Pipeline(card, Limits(max_images=config.max_images_per_request, max_pixels=FIELD * FIELD))
        self._runner = ModelRunner(artifact, worker_device(properties.get("gpu_id")), config.torch_threads)
        log.info("%s %s ready on %s, %d thread(s)", card.name, card.version, self._runner.device,
                 config.torch_threads)  # fmt: skip

    def handle(self, data: list[dict[str, Any]], context: Any) -> list[bytes]:
        assert self._runner is not None and self._pipeline is not None, "TorchServe calls initialize() first"
        parsed = [self._parse(request, context.get_all_request_header(i)) for i, request in enumerate(data)]
        ready = [item for item in parsed if not isinstance(item, ApiError)]
        output = BatchOutput(np.empty((0, 10), np.float32), {})
        if ready:
            layers = frozenset().union(*(frozenset(item.layers) for item in ready))
            output = self._runner.run(np.concatenate([item.batch for item in ready]), layers)
        responses: list[bytes] = []
        offset = 0
        for i, item in enumerate(parsed):
            if isinstance(item, ApiError):
                context.set_response_content_type(i, JSON)
                context.set_response_status(item.status, item.message, i)
                responses.append(item.body())
                continue
            mine = output.slice(offset, offset + len(item.batch))
            offset += len(item.batch)
            if isinstance(item, TensorRequest):
                context.set_response_content_type(i, TENSOR_CONTENT_TYPE)
                own = BatchOutput(mine.probabilities, {name: mine.features[name] for name in item.layers})
                responses.append(encode_response(own))
            else:
                context.set_response_content_type(i, JSON)
                items = self._pipeline.predictions(mine, item.request, item.layers)
                responses.append(self._pipeline.body(items))
        return responses

    def _parse(self, request: dict[str, Any], headers: dict[str, Any]) -> TensorRequest | DirectRequest | ApiError:
        assert self._pipeline is not None
        body = request.get("data", request.get("body"))
        try:
            if is_tensor(body):
                limits = self._pipeline.limits
                return decode_request(bytes(body), headers, self._pipeline.backend_outputs, limits.max_images)
            return decode_direct_request(body, self._pipeline)
        except ApiError as error:
            return error
