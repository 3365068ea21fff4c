"""Loading one model version so that it may take traffic, in this order: read; check the file's hash and the
card's input spec; load (a corrupt file or a module of the wrong shape is refused); warm at every batch size (the
backend's setup); run the card's probe set through the backend and check its answers. A step that fails raises
:class:`~model.refusal.VersionRefused` with its code, and leaves nothing loaded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from model.admission import load_module
from model.probes import check_probes, probe_batch
from model.refusal import RefusalCode, VersionRefused
from model.repository import ModelRepository, ModelVersion
from service.core.backend import Backend
from service.core.batcher import Batcher
from service.core.inference import Inference
from service.core.metrics import Metrics
from service.core.types import Limits

if TYPE_CHECKING:
    from service.core.telemetry.tracing import Tracing

BackendFactory = Callable[[ModelVersion], Backend]
BatcherFactory = Callable[[Backend], Batcher]


class VersionLoader:
    """Loads versions of ``repository``, each with a backend and a batcher of its own. ``check_probes``: refuse a
    version whose card records no probe set (a single artifact served as before is not probed)."""

    def __init__(
        self,
        repository: ModelRepository,
        make_backend: BackendFactory,
        make_batcher: BatcherFactory,
        metrics: Metrics,
        limits: Limits,
        *,
        check_probes: bool,
        equip: Callable[[Inference], None] = lambda _: None,
        tracing: Tracing | None = None,
    ) -> None:
        self.repository = repository
        self._make_backend = make_backend
        self._make_batcher = make_batcher
        self._metrics = metrics
        self._limits = limits
        self._check_probes = check_probes
        self._equip = equip  # what each version gets beside its model: its drift monitor, its payload log
        self._tracing = tracing

    async def load(self, version: str) -> Inference:
        found = await asyncio.to_thread(self.repository.verify, version)
        await asyncio.to_thread(load_module, found)
        backend = self._make_backend(found)
        inference = Inference(found.artifact, found.card, backend, self._make_batcher(backend), self._metrics,
                              self._limits, self._tracing)  # fmt: skip
        self._equip(inference)
        await inference.start(wait=True)
        try:
            if not inference.loaded:
                raise VersionRefused(RefusalCode.CORRUPT_ARTIFACT, version, inference.setup_error or "did not load")
            if self._check_probes:
                await _probe(inference)
        except VersionRefused:
            await inference.stop()
            raise
        return inference


async def _probe(inference: Inference) -> None:
    card = inference.card
    if not card.probes:
        raise VersionRefused(RefusalCode.NO_PROBES, card.version, "its card records no probe set to check it with")
    answered = await inference.backend.predict(probe_batch(card.probes, card.input), frozenset())
    check_probes(card, lambda _: answered.probabilities)
