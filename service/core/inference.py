"""One served model, and the whole of a prediction on it, whatever the protocol asked:

    admission -> read -> decode, MNIST field, normalize -> batch -> model -> unbatch -> predictions, counting

Protocol adapters (the /v1 and /v2 routes) only translate: their wire format into a :class:`Call` (read inside
:meth:`Inference.run`, once the request is admitted, for the model that will answer it), and the :class:`Outcome`
back into their answer, written through :meth:`Outcome.encode` so that encoding is timed as the request's last
stage and its trace ends.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from model.card import ModelCard
from service.core.backend import Backend
from service.core.batcher import Batcher, DeadlineRefusal
from service.core.drift import DriftMonitor
from service.core.errors import ApiError, ErrorCode
from service.core.explanations import FieldTrace
from service.core.layer_parameters import LayerParameters
from service.core.metrics import Metrics
from service.core.oip.metadata import ServedModel
from service.core.payload_log import PayloadLog
from service.core.pipeline import Pipeline
from service.core.predictions import top_predictions
from service.core.preprocessing import InputStats
from service.core.quotas import charge_images
from service.core.schemas import PredictOptions
from service.core.telemetry.recorder import RequestTelemetry
from service.core.telemetry.stages import RequestTiming
from service.core.types import BatchOutput, Limits, RawInput
from service.core.version_stats import VersionStats

if TYPE_CHECKING:
    from service.core.telemetry.tracing import Tracing

log = logging.getLogger(__name__)

# Decoding this many bytes of images takes milliseconds: it runs on a worker thread so the event loop keeps
# serving; smaller inputs are cheaper to handle inline than to hand over.
OFFLOAD_BYTES = 256 * 1024


class Call(Protocol):
    """What any protocol's request gives the inference object: raw inputs and the options of the prediction."""

    @property
    def inputs(self) -> Sequence[RawInput]: ...

    @property
    def options(self) -> PredictOptions: ...


@dataclass(slots=True)  # per request: a frozen dataclass's __init__ costs about 1 us more
class PredictCall:
    """A :class:`Call` that carries nothing else."""

    options: PredictOptions
    inputs: list[RawInput]


CallT = TypeVar("CallT", bound=Call)
Prepared = TypeVar("Prepared")
Reader = Callable[["Inference"], Awaitable[CallT]]  # reads a request into a call for the model that answers it
Answer = TypeVar("Answer")


@dataclass(slots=True)  # per request, as PredictCall
class Outcome(Generic[CallT]):
    """A call's share of its batch: the model's output, and what is needed to answer with it."""

    call: CallT
    output: BatchOutput
    layers: list[str]  # the feature layers asked for, in network order
    traces: list[FieldTrace] | None  # each input's field when the call asked for an explanation
    inference: Inference  # the model version that answered
    batch: np.ndarray  # the model's input: what a shadow copy sends the candidate
    timing: RequestTiming
    telemetry: RequestTelemetry

    def encode(self, write: Callable[[], Answer]) -> Answer:
        """The adapter's answer, ``write()``: timed as the encode stage, which completes the request's stage
        metrics and ends its span. Every protocol adapter writes its answer through this."""
        try:
            answer = write()
        except Exception as error:
            self.telemetry.failed(self.timing, error)
            raise
        self.telemetry.finish(self.timing)
        return answer

    def predictions(self) -> list[dict[str, Any]]:
        """The public predictions, with each one's explanation when the call asked for it."""
        return self.inference.pipeline.predictions(self.output, self.call.options, self.layers, self.traces)

    def body(self) -> bytes:
        """The /v1 predict response body: the model version that answered and the predictions (encoded, as
        above)."""
        return self.encode(lambda: self.inference.pipeline.body(self.predictions()))


class Inference:
    """A model served by one backend through one batcher: loaded by :meth:`start`, asked by :meth:`run`."""

    def __init__(
        self,
        artifact: Path,
        card: ModelCard,
        backend: Backend,
        batcher: Batcher,
        metrics: Metrics,
        limits: Limits,
        tracing: Tracing | None = None,
    ) -> None:
        self.artifact = artifact
        self.card = card
        self.backend = backend
        self.batcher = batcher
        self.pipeline = Pipeline(card, limits)
        self.protocol_model = ServedModel(card)  # its Open Inference Protocol tensors and metadata
        self.layer_parameters: LayerParameters | None = None  # read off the artifact once loaded
        self.setup_error: str | None = None
        self.metrics = metrics
        self.stats = VersionStats(card.version, metrics)
        self.tracing = tracing
        self._telemetry: dict[str, RequestTelemetry] = {}  # by route
        self._loaded = False
        self._setup_task: asyncio.Task[None] | None = None
        self.drift: DriftMonitor | None = None  # set by whoever builds it, as are the two below
        self.payload_log: PayloadLog | None = None

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def limits(self) -> Limits:
        return self.pipeline.limits

    async def run(
        self,
        read: Reader[CallT],
        route: str = "",
        headers: Mapping[str, str] | None = None,
        arrived: float | None = None,
    ) -> Outcome[CallT]:
        """Admit a request, ``read`` it into a call for this model, and answer it. Refused with ``not_ready`` while
        loading, and (``queue_full``) before its body is read when the model could not serve it within its
        deadline. ``route`` labels its stage metrics; ``headers`` carry its W3C trace context (read when tracing
        is on); ``arrived`` (perf_counter) is when the protocol took the request in, where its read stage starts."""
        if not self._loaded:
            self.stats.failed()
            raise ApiError(ErrorCode.not_ready, "the model is still loading", headers={"Retry-After": "1"})
        telemetry = self._telemetry.get(route) or self._telemetry_of(route)
        timing = telemetry.start(arrived, headers)
        try:
            return await self._run(read, timing, telemetry)
        except Exception as error:
            telemetry.failed(timing, error, error.when if isinstance(error, DeadlineRefusal) else None)
            if not isinstance(error, ApiError) or error.status >= 500:
                self.stats.failed()
            raise

    def _telemetry_of(self, route: str) -> RequestTelemetry:
        telemetry = self._telemetry[route] = RequestTelemetry(self.metrics, self.tracing, self.card.version, route)
        return telemetry

    async def _run(self, read: Reader[CallT], timing: RequestTiming, telemetry: RequestTelemetry) -> Outcome[CallT]:
        pipeline = self.pipeline
        with self.batcher.arrival():
            call = await read(self)
            timing.read = time.perf_counter()
            inputs, options = call.inputs, call.options
            charge_images(len(inputs))
            layers = pipeline.layers(options.features)
            traces = None
            measured: list[InputStats] | None = [] if self.drift is not None and self.drift.measuring() else None
            if options.explain:
                stages = "preprocessing" in options.explain
                traces = await _off_loop_when_large(
                    inputs, pipeline.trace, inputs, options.preprocess, stages, measured
                )
                batch = pipeline.normalize([trace.field for trace in traces])
            else:
                batch = await _off_loop_when_large(inputs, pipeline.prepare, inputs, options.preprocess, measured)
            timing.prepared = time.perf_counter()
        output = await self.batcher.submit(batch, pipeline.outputs(layers, options), timing)
        telemetry.answered(timing)
        labels, confidences = top_predictions(output.probabilities)
        self.stats.answered(timing.answered - timing.started, labels, confidences)
        if measured is not None and self.drift is not None:
            self.drift.observe(measured, labels, confidences)
        if self.payload_log is not None and self.payload_log.sample():
            self.payload_log.write(batch, output.probabilities)
        return Outcome(call, output, layers, traces, self, batch, timing, telemetry)

    async def start(self, *, wait: bool) -> None:
        """Start batching and load the model, in the background unless ``wait``."""
        self.batcher.start()
        self._setup_task = asyncio.create_task(self._setup(), name=f"load-{self.card.name}-{self.card.version}")
        if wait:
            await self._setup_task

    async def _setup(self) -> None:
        try:
            await self.backend.setup()
        except Exception as exc:  # reported by /readyz; the process stays up for diagnosis
            log.exception("backend setup failed")
            self.setup_error = f"backend setup failed: {exc}"
        else:
            try:
                self.layer_parameters = await asyncio.to_thread(LayerParameters.load, self.artifact, self.card)
            except ValueError as exc:  # it serves; only its layers' parameters cannot be shown
                log.warning("model %s: no layer parameters to show: %s", self.card.version, exc)
            # Everything loaded by now (torch, the model, the app) lives as long as the process. Frozen, the
            # collector stops rescanning it, which otherwise stalls every request for 100+ ms at a time.
            gc.freeze()
            self._loaded = True
            card, backend = self.card, self.backend
            log.info("model %s %s ready on %s (%s)", card.name, card.version, backend.device, backend.name)

    async def ready(self) -> bool:
        return self._loaded and await self.backend.ready()

    async def stop(self) -> None:
        """Serve everything queued, then release the backend."""
        await self.batcher.stop()
        if self._setup_task is not None:
            self._setup_task.cancel()
        await self.backend.close()
        if self.payload_log is not None:
            self.payload_log.close()


async def _off_loop_when_large(inputs: Sequence[RawInput], work: Callable[..., Prepared], *args: object) -> Prepared:
    if _encoded_bytes(inputs) > OFFLOAD_BYTES:
        return await asyncio.to_thread(work, *args)
    return work(*args)


def _encoded_bytes(inputs: Sequence[RawInput]) -> int:
    """Bytes of image files and base64 text: what decoding costs grows with."""
    return sum(len(raw) for raw in inputs if isinstance(raw, bytes | str))
