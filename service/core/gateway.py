"""The running gateway: its settings, metrics and the served model's :class:`Inference`, built once at start-up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model.card import load_card
from service.core.backend import Backend
from service.core.batcher import Batcher
from service.core.inference import Inference
from service.core.metrics import Metrics
from service.core.settings import Settings
from service.core.telemetry.tracing import Tracing
from service.core.types import Limits


@dataclass
class Gateway:
    settings: Settings
    metrics: Metrics
    inference: Inference

    @classmethod
    def create(cls, settings: Settings, backend: Backend) -> Gateway:
        card = load_card(settings.model.artifact)
        metrics = Metrics()
        batcher = Batcher(
            backend,
            metrics,
            max_batch_size=settings.batching.max_batch_size,
            max_wait_seconds=settings.batching.max_batch_wait_ms / 1000,
            max_queue_images=settings.batching.max_queue_images,
            max_queue_wait_seconds=settings.batching.max_queue_wait_ms / 1000,
            inline_max_images=settings.batching.inline_max_images if settings.batching.max_batch_wait_ms == 0 else 0,
            retry_after_seconds=settings.batching.retry_after_seconds,
        )
        metrics.model_info.labels(
            name=card.name, version=card.version, sha256=card.sha256, backend=backend.name, device=backend.device
        ).set(1)
        limits = Limits(settings.limits.max_images_per_request, settings.limits.max_image_pixels)
        tracing = Tracing.from_environment()
        inference = Inference(settings.model.artifact, card, backend, batcher, metrics, limits, tracing)
        return cls(settings, metrics, inference)

    async def start(self) -> None:
        # Several workers share the port, each with a socket of its own (service/workers.py), which uvicorn makes
        # listen only after this returns: waiting for the model keeps connections off a worker still loading.
        await self.inference.start(wait=self.settings.server.workers > 1)

    async def stop(self) -> None:
        await self.inference.stop()
        self.metrics.retire()
        if self.inference.tracing is not None:
            self.inference.tracing.shutdown()

    def serving_info(self) -> dict[str, Any]:
        s = self.settings
        backend = self.inference.backend
        return {
            "backend": backend.name,
            "device": backend.device,
            "workers": s.server.workers,
            "batching": {
                "max_batch_size": s.batching.max_batch_size,
                "max_batch_wait_ms": s.batching.max_batch_wait_ms,
                "max_queue_images": s.batching.max_queue_images,
                "max_queue_wait_ms": s.batching.max_queue_wait_ms,
            },
            "limits": {
                "max_body_bytes": s.limits.max_body_bytes,
                "max_image_pixels": s.limits.max_image_pixels,
                "max_images_per_request": s.limits.max_images_per_request,
            },
        }
