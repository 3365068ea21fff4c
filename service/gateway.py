"""The running gateway: model card, backend, batcher, metrics and limits, built once at start-up."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from model.card import ModelCard, load_card
from service.backends.base import Backend
from service.backends.embedded import EmbeddedBackend
from service.batcher import Batcher
from service.inputs import Limits
from service.metrics import Metrics
from service.preprocessing import Normalization
from service.settings import Settings

log = logging.getLogger(__name__)


def build_backend(settings: Settings) -> Backend:
    if settings.backend == "torchserve":
        from service.backends.torchserve import TorchServeBackend

        return TorchServeBackend.from_settings(settings)
    return EmbeddedBackend(settings.artifact, settings.device, settings.torch_threads)


@dataclass
class Gateway:
    settings: Settings
    card: ModelCard
    backend: Backend
    metrics: Metrics
    batcher: Batcher
    normalization: Normalization
    limits: Limits
    setup_error: str | None = None
    _setup_done: bool = field(default=False, repr=False)

    @classmethod
    def create(cls, settings: Settings) -> Gateway:
        card = load_card(settings.artifact)
        backend = build_backend(settings)
        metrics = Metrics()
        batcher = Batcher(
            backend,
            metrics,
            max_batch_size=settings.max_batch_size,
            max_wait_seconds=settings.max_batch_wait_ms / 1000,
            max_queue_images=settings.max_queue_images,
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
            normalization=Normalization(card.input.mean, card.input.std),
            limits=Limits(max_images=settings.max_images_per_request, max_pixels=settings.max_image_pixels),
        )

    @property
    def loaded(self) -> bool:
        return self._setup_done

    def count_predictions(self, labels: Iterable[int]) -> None:
        for label in labels:
            self.metrics.predictions_by_label[label].inc()

    @property
    def model_ref(self) -> dict[str, str]:
        return {"name": self.card.name, "version": self.card.version}

    async def start(self) -> None:
        """Start batching and load the model: in the background (/readyz says 503 meanwhile), or with
        several workers before this worker takes connections."""
        self.batcher.start()
        self._setup_task = asyncio.create_task(self._setup())
        if self.settings.workers > 1:
            # Workers share one port: each takes connections only once its model is loaded, so no
            # request lands on a worker that is still loading while another one could serve it.
            await self._setup_task

    async def _setup(self) -> None:
        try:
            await self.backend.setup()
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
            },
            "limits": {
                "max_body_bytes": s.max_body_bytes,
                "max_image_pixels": s.max_image_pixels,
                "max_images_per_request": s.max_images_per_request,
            },
        }


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_gateway(request: Request) -> Gateway:  # async: FastAPI runs sync dependencies on a thread
    return gateway_of(request)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
