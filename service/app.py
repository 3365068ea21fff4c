"""The composition root: the backend the settings name, the gateway around it, and the FastAPI application
with its routes, pages, middleware and error map."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from service.backends.embedded import EmbeddedBackend
from service.core.api_keys import ApiKeys
from service.core.backend import Backend
from service.core.errors import ErrorCode
from service.core.gateway import Gateway
from service.core.oip.metadata import ServedModel
from service.core.settings import Settings, get_settings
from service.grpc.server import start_grpc_server
from service.grpc.servicer import InferenceService
from service.http.auth import ApiKeyMiddleware, document_api_keys, protected_paths
from service.http.error_handlers import ErrorResponder
from service.http.middleware import BodySizeLimitMiddleware, MetricsMiddleware
from service.http.request_route import DirectRoutes
from service.http.routes import health, models, predict, v2
from service.http.security_headers import SecurityHeadersMiddleware
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
    api_keys = ApiKeys(settings.api_keys_file) if settings.api_keys_file else None
    served_model = ServedModel(gateway.inference.card)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if api_keys is not None:
            # Only a loop in the main thread takes signal handlers (not the test client's, for one).
            with suppress(ValueError, RuntimeError, NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, api_keys.reload)
        await gateway.start()
        grpc_server = None
        if settings.grpc_port:
            grpc_service = InferenceService(gateway.inference, served_model, gateway.metrics, api_keys)
            grpc_server = await start_grpc_server(
                grpc_service,
                settings.host,
                settings.grpc_port,
                max_message_bytes=settings.max_body_bytes,
                shared_port=settings.workers > 1,
            )
        try:
            yield
        finally:
            if grpc_server is not None:  # new calls are refused; those in flight get the grace period to finish
                await grpc_server.stop(settings.graceful_shutdown_seconds)
            await gateway.stop()

    app = FastAPI(
        title="digits",
        version=gateway.inference.card.version,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Prometheus is our telemetry; FastAPI's built-in OpenTelemetry hooks cost ~10 % per request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.gateway = gateway
    app.state.served_model = served_model

    def count_error(code: ErrorCode) -> None:
        gateway.metrics.errors.labels(code=code.value).inc()

    errors = ErrorResponder(on_error=count_error)
    errors.install(app)
    # Added innermost first: a request meets metrics, security headers, CORS, the body limit, the key check,
    # then the predict route served directly, or the app.
    app.add_middleware(DirectRoutes, routes=predict.router.routes, on_exception=errors)
    if api_keys is not None:
        protected = protected_paths(settings.auth_metrics)
        app.add_middleware(ApiKeyMiddleware, keys=api_keys, protected=protected, on_error=count_error)
        document_api_keys(app, protected)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        linger_max_bytes=settings.linger_max_bytes,
        linger_seconds=settings.linger_seconds,
        on_error=count_error,
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=gateway.metrics)
    for router in (predict.router, models.router, health.router, v2.router, pages.router):
        app.include_router(router)
    return app
