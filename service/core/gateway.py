"""The running gateway: model card, backend, batcher, metrics and pipeline, built once at start-up."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from model.card import ModelCard, load_card
from service.core.backend import Backend
from service.core.batcher import Batcher
from service.core.layer_parameters import LayerParameters
from service.core.metrics import Metrics
from service.core.pipeline import Pipeline
from service.core.settings import Settings
from service.core.types import Limits

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    settings: Settings
    card: ModelCard
    backend: Backend
    metrics: Metrics
    batcher: Batcher
    pipeline: Pipeline
    setup_error: str | None = None
    layer_parameters: LayerParameters | None = None  # read off the artifact during setup
    _setup_done: bool = field(default=False, repr=False)

    @classmethod
    def create(cls, settings: Settings, backend: Backend) -> Gateway:
        card = load_card(settings.artifact)
        metrics = Metrics()
        batcher = Batcher(
            backend,
            metrics,
            max_batch_size=settings.max_batch_size,
            max_wait_seconds=settings.max_batch_wait_ms / 1000,
            max_queue_images=settings.max_queue_images,
            max_queue_wait_seconds=settings.max_queue_wait_ms / 1000,
            inline_max_images=settings.inline_max_images if settings.max_batch_wait_ms == 0 else 0,
            retry_after_seconds=settings.retry_after_seconds,
        )
        metrics.model_info.labels(
            name=card.name, version=card.version, sha256=card.sha256, backend=backend.name, device=backend.device
        ).set(1)
        return cls(
            settings=settings,
            card=card,
            backend=backend,
            metrics=metrics,
            batcher=batcher,
            pipeline=Pipeline(card, Limits(settings.max_images_per_request, settings.max_image_pixels)),
        )

    @property
    def loaded(self) -> bool:
        return self._setup_done

    def count_predictions(self, labels: Iterable[int]) -> None:
        for label in labels:
            self.metrics.predictions_by_label[label].inc()

    async def start(self) -> None:
        """Start batching and load the model: in the background (/readyz says 503 meanwhile), or with
        several workers before this worker takes connections."""
        self.batcher.start()
        self._setup_task = asyncio.create_task(self._setup())
        if self.settings.workers > 1:
            # Workers share the port, each with a socket of its own (service/workers.py), which uvicorn
            # makes listen only after this returns; until then the kernel gives it no connections, so no
            # request lands on a worker that is still loading while another one could serve it.
            await self._setup_task

    async def _setup(self) -> None:
        try:
            await self.backend.setup()
            self.layer_parameters = await asyncio.to_thread(LayerParameters.load, self.settings.artifact, self.card)
        except Exception as exc:  # reported by /readyz; the process stays up for diagnosis
            log.exception("backend setup failed")
            self.setup_error = f"backend setup failed: {exc}"
        else:
            # Everything loaded by now (torch, the model, the app) lives as long as the process. Frozen,
            # the collector stops rescanning it, which otherwise stalls every request for 100+ ms at a time.
            gc.freeze()
            self._setup_done = True
            log.info(
                "model %s %s ready on %s (%s)",
                self.card.name,
                self.card.version,
                self.backend.device,
                self.backend.name,
            )

    async def ready(self) -> bool:
        return self._setup_done and await self.backend.ready()

    async def stop(self) -> None:
        await self.batcher.stop()
        self._setup_task.cancel()
        await self.backend.close()
        self.metrics.retire()

    def serving_info(self) -> dict[str, Any]:
        s = self.settings
        return {
            "backend": self.backend.name,
            "device": self.backend.device,
            "workers": s.workers,
            "batching": {
                "max_batch_size": s.max_batch_size,
                "max_batch_wait_ms": s.max_batch_wait_ms,
                "max_queue_images": s.max_queue_images,
                "max_queue_wait_ms": s.max_queue_wait_ms,
            },
            "limits": {
                "max_body_bytes": s.max_body_bytes,
                "max_image_pixels": s.max_image_pixels,
                "max_images_per_request": s.max_images_per_request,
            },
        }
