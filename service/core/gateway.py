"""The running gateway: its settings and metrics, the model versions it serves with the traffic policy between
them, the rollout, and the coordination with the other processes: built once at start-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from model.repository import ModelRepository, ModelVersion
from service.core.backend import Backend
from service.core.batcher import Batcher
from service.core.coordination import Coordinator
from service.core.drift import DriftMonitor
from service.core.inference import Inference
from service.core.loading import VersionLoader
from service.core.metrics import Metrics
from service.core.payload_log import PayloadLog
from service.core.rollout import RolloutController
from service.core.served_models import ServedModels
from service.core.serving_state import StateStore
from service.core.settings import Settings
from service.core.shadow import ShadowRunner
from service.core.telemetry.otel_environment import tracing_from_environment
from service.core.types import Limits

if TYPE_CHECKING:
    from service.core.telemetry.tracing import Tracing


@dataclass
class Gateway:
    settings: Settings
    metrics: Metrics
    models: ServedModels
    coordinator: Coordinator
    rollout: RolloutController
    tracing: Tracing | None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @classmethod
    def create(cls, settings: Settings, make_backend: Callable[[ModelVersion], Backend]) -> Gateway:
        metrics = Metrics()
        batching = settings.batching

        def make_batcher(backend: Backend) -> Batcher:
            return Batcher(
                backend,
                metrics,
                max_batch_size=batching.max_batch_size,
                max_wait_seconds=batching.max_batch_wait_ms / 1000,
                max_queue_images=batching.max_queue_images,
                max_queue_wait_seconds=batching.max_queue_wait_ms / 1000,
                inline_max_images=batching.inline_max_images if batching.max_batch_wait_ms == 0 else 0,
                retry_after_seconds=batching.retry_after_seconds,
            )

        root = settings.repository.model_repository
        repository = ModelRepository(root) if root else ModelRepository.of_artifact(settings.model.artifact)
        limits = Limits(settings.limits.max_images_per_request, settings.limits.max_image_pixels)
        monitoring, payloads = settings.monitoring, settings.payload_log

        def equip(inference: Inference) -> None:
            """Each version's own drift monitor (against its card's baseline) and payload log."""
            card = inference.card
            if monitoring.drift_monitoring and card.baseline is not None:
                inference.drift = DriftMonitor(card.baseline, card.version, metrics,
                                               window=monitoring.drift_window_images,
                                               refresh_seconds=monitoring.drift_refresh_seconds,
                                               requests_per_second=monitoring.drift_requests_per_second)  # fmt: skip
            if payloads.payload_log_dir is not None:
                inference.payload_log = PayloadLog(payloads.payload_log_dir, card,
                                                   per_second=payloads.payload_log_per_second,
                                                   max_bytes=payloads.payload_log_max_bytes,
                                                   backups=payloads.payload_log_backups)  # fmt: skip

        tracing = tracing_from_environment()
        loader = VersionLoader(repository, make_backend, make_batcher, metrics, limits, check_probes=root is not None,
                               equip=equip, tracing=tracing)  # fmt: skip
        # A single artifact keeps its state in memory; a repository's is shared by every process and kept.
        store = StateStore(settings.state_directory() if root else settings.repository.state_dir)
        initial = settings.repository.model_version or repository.latest()
        shadow = ShadowRunner(metrics, settings.rollout.shadow_max_share)
        models = ServedModels(loader, store, metrics, shadow, initial)
        coordinator = Coordinator(models, settings.repository.repository_poll_seconds,
                                  settings.repository.repository_autoload)  # fmt: skip
        rollout = RolloutController(models, coordinator.totals, settings.rollout, metrics)
        coordinator.controller = rollout
        return cls(settings, metrics, models, coordinator, rollout, tracing)

    async def start(self) -> None:
        """Load what is served: in the background (/readyz says 503 meanwhile), or with several workers before
        this worker takes connections; then keep in step with the other processes."""
        # Several workers share the port, each with a socket of its own (service/workers.py), which uvicorn makes
        # listen only after this returns: waiting for the model keeps connections off a worker still loading.
        loading = asyncio.create_task(self.models.start(), name="load-models")
        if self.settings.server.workers > 1:
            await loading
        self._tasks = [loading, asyncio.create_task(self._coordinate(loading), name="coordination")]

    async def _coordinate(self, loading: asyncio.Task[None]) -> None:
        await loading
        await self.coordinator.run()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.models.stop()
        self.coordinator.close()
        if self.tracing is not None:
            self.tracing.shutdown()
        self.metrics.retire()

    def serving_info(self) -> dict[str, Any]:
        s = self.settings
        stable = self.models.stable
        policy = self.models.policy
        return {
            "backend": None if stable is None else stable.backend.name,
            "device": None if stable is None else stable.backend.device,
            "workers": s.server.workers,
            "versions": sorted(self.models.versions),
            "traffic": None if policy is None else policy.model_dump(),
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
