"""The steps every inference route shares: a loaded gateway, and the inputs through the pipeline (off the event
loop when decoding is costly). Routes read and prepare inside ``batcher.arrival()``, then ``submit``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from service.core.errors import ApiError, ErrorCode
from service.core.explanations import FieldTrace
from service.core.gateway import Gateway
from service.core.pipeline import Pipeline
from service.core.preprocessing import Mode
from service.core.types import RawInput
from service.http.dependencies import gateway_of

# Decoding this many bytes of images takes milliseconds: do it on a worker thread so the
# event loop keeps serving; smaller inputs are cheaper to handle inline than to hand over.
OFFLOAD_BYTES = 256 * 1024

Prepared = TypeVar("Prepared")


def loaded_gateway(request: Request) -> Gateway:
    """The gateway, once its model is loaded (``not_ready`` before)."""
    gateway = gateway_of(request)  # not a dependency: on this hot path the solver's ~30 us are 10 % of the CPU
    if not gateway.loaded:
        raise ApiError(ErrorCode.not_ready, "the model is still loading", headers={"Retry-After": "1"})
    return gateway


async def prepare_batch(pipeline: Pipeline, inputs: Sequence[RawInput], preprocess: Mode) -> np.ndarray:
    """The inputs decoded, made MNIST fields and normalized: the batcher's input."""
    return await _off_loop_when_large(inputs, pipeline.prepare, inputs, preprocess)


async def trace_batch(
    pipeline: Pipeline, inputs: Sequence[RawInput], preprocess: Mode, stages: bool
) -> tuple[np.ndarray, list[FieldTrace]]:
    """As :func:`prepare_batch`, keeping each input's field (and preprocessing stages when ``stages``) to explain
    it."""
    traces = await _off_loop_when_large(inputs, pipeline.trace, inputs, preprocess, stages)
    return pipeline.normalize([trace.field for trace in traces]), traces


async def _off_loop_when_large(inputs: Sequence[RawInput], work: Callable[..., Prepared], *args: object) -> Prepared:
    if _encoded_bytes(inputs) > OFFLOAD_BYTES:
        return await run_in_threadpool(work, *args)
    return work(*args)


def _encoded_bytes(inputs: Sequence[RawInput]) -> int:
    """Bytes of image files and base64 text: what decoding costs grows with."""
    return sum(len(raw) for raw in inputs if isinstance(raw, bytes | str))
