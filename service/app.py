"""The composition root: the backend the settings name, the gateway around it, and the FastAPI application
with its routes, pages, middleware and error map."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.backends.embedded import EmbeddedBackend
from service.core.backend import Backend
from service.core.gateway import Gateway
from service.core.oip.metadata import ServedModel
from service.core.settings import Settings, get_settings
from service.http.error_handlers import install_error_handlers
from service.http.middleware import BodySizeLimitMiddleware, MetricsMiddleware
from service.http.routes import health, models, predict, v2
from service.ui import pages

DESCRIPTION = """Handwritten digit recognition. POST images (multipart or JSON) to `/v1/predict`
and get class probabilities and, on request, the feature maps of the network's layers.
Every error has the shape `{"error": {"code", "message", "index"?}}` with a stable `code`.
The same model speaks the Open Inference Protocol v2 (KServe / Triton) under `/v2`, binary tensors included;
its errors have the protocol's shape `{"error": "<code>: <message>", "code", "index"?}`."""


def build_backend(settings: Settings) -> Backend:
    if settings.backend == "torchserve":
        from service.backends.torchserve.client import TorchServeBackend

        return TorchServeBackend.from_settings(settings)
    return EmbeddedBackend(settings.artifact, settings.device, settings.torch_threads)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway = Gateway.create(settings, build_backend(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = FastAPI(
        title="digits",
        version=gateway.card.version,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Prometheus is our telemetry; FastAPI's built-in OpenTelemetry hooks cost ~10 % per request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.gateway = gateway
    app.state.served_model = ServedModel(gateway.card)
    install_error_handlers(app, on_error=lambda code: gateway.metrics.errors.labels(code=code.value).inc())
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=gateway.metrics)
    for router in (predict.router, models.router, health.router, v2.router, pages.router):
        app.include_router(router)
    return app
