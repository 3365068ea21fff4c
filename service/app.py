"""The FastAPI application: routes, middleware, the error map and the gateway's lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.errors import install_error_handlers
from service.gateway import Gateway
from service.middleware import BodySizeLimitMiddleware, MetricsMiddleware
from service.routes import health, models, pages, predict
from service.settings import Settings, get_settings

DESCRIPTION = """Handwritten digit recognition. POST images (multipart or JSON) to `/v1/predict`
and get class probabilities and, on request, the feature maps of the network's layers.
Every error has the shape `{"error": {"code", "message", "index"?}}` with a stable `code`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway = Gateway.create(settings)

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
    install_error_handlers(app, on_error=lambda code: gateway.metrics.errors.labels(code=code.value).inc())
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=gateway.metrics)
    for router in (predict.router, models.router, health.router, pages.router):
        app.include_router(router)
    return app
