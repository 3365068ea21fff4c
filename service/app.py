"""The composition root: the backend the settings name, the gateway around it, and the FastAPI application
with its routes, pages, middleware and error map."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from model.repository import ModelVersion
from service.backends.embedded import EmbeddedBackend
from service.core.api_keys import ApiKeys
from service.core.backend import Backend
from service.core.errors import ErrorCode
from service.core.gateway import Gateway
from service.core.metrics import MULTIPROCESS_DIR_VARIABLE, multiprocess_mode
from service.core.quotas import LocalBuckets, Quotas, SharedBuckets, shared_buckets_path
from service.core.settings import Settings, get_settings
from service.grpc.server import start_grpc_server
from service.grpc.servicer import InferenceService
from service.http.auth import ApiKeyMiddleware, document_api_keys, protected_paths
from service.http.error_handlers import ErrorResponder
from service.http.middleware import BodySizeLimitMiddleware, MetricsMiddleware
from service.http.quota import QuotaMiddleware
from service.http.request_route import DirectRoutes
from service.http.routes import health, models, predict, repository, rollout, v2
from service.http.security_headers import SecurityHeadersMiddleware
from service.ui import pages
from service.ui.history import MetricsHistory

DESCRIPTION = """Handwritten digit recognition. POST images (multipart or JSON) to `/v1/predict`
and get class probabilities and, on request, the feature maps of the network's layers.
Every error has the shape `{"error": {"code", "message", "index"?}}` with a stable `code`.
The same model speaks the Open Inference Protocol v2 (KServe / Triton) under `/v2`, binary tensors included;
its errors have the protocol's shape `{"error": "<code>: <message>", "code", "index"?}`."""


def backend_factory(settings: Settings) -> Callable[[ModelVersion], Backend]:
    """What runs a model version: the embedded model, or TorchServe (which serves the one artifact it was given)."""

    def build_backend(version: ModelVersion) -> Backend:
        if settings.model.backend == "torchserve":
            from service.backends.torchserve.client import TorchServeBackend

            return TorchServeBackend.from_settings(settings)
        return EmbeddedBackend(version.artifact, settings.model.device, settings.model.torch_threads)

    return build_backend


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    gateway = Gateway.create(settings, backend_factory(settings))
    first_card = gateway.models.loader.repository.read(gateway.models.initial_version).card
    api_keys = ApiKeys(settings.auth.api_keys_file) if settings.auth.api_keys_file else None

    quotas = None
    if api_keys is not None:
        shared = shared_buckets_path(os.environ.get(MULTIPROCESS_DIR_VARIABLE))
        quotas = Quotas(LocalBuckets() if shared is None else SharedBuckets(shared), gateway.metrics)
    history = MetricsHistory(
        gateway.metrics.exported,
        settings.telemetry,
        monitoring=settings.monitoring,
        keys=api_keys,
        quotas=quotas,
        serving_state=gateway.rollout.state,
    )
    traffic = settings.rollout
    sticky = {"request": None, "api_key": "api_key", "header": traffic.traffic_sticky_header}[traffic.traffic_sticky]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        """Every task the app runs beside its requests: the key file's reload on SIGHUP, the model's loading and
        batching, the dashboard's metrics history, the tallies' flush with several workers, and the gRPC server
        (DIGITS_GRPC_PORT)."""
        if api_keys is not None:
            # Only a loop in the main thread takes signal handlers (not the test client's, for one).
            with suppress(ValueError, RuntimeError, NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, api_keys.reload)
        await gateway.start()
        sampling = asyncio.create_task(history.run(), name="dashboard-metrics-history")
        # With several workers, the others read this one's tallied observations from the shared files.
        flushing = None
        if multiprocess_mode():
            flushing = asyncio.create_task(gateway.metrics.tallies.flush_every(1.0), name="metrics-tallies-flush")
        grpc_server = None
        if settings.server.grpc_port:
            grpc_service = InferenceService(gateway.models, gateway.metrics, api_keys, sticky)
            grpc_server = await start_grpc_server(
                grpc_service,
                settings.server.host,
                settings.server.grpc_port,
                max_message_bytes=settings.limits.max_body_bytes,
                shared_port=settings.server.workers > 1,
            )
        try:
            yield
        finally:
            if grpc_server is not None:  # new calls are refused; those in flight get the grace period to finish
                await grpc_server.stop(settings.server.graceful_shutdown_seconds)
            for task in (sampling, flushing):
                if task is not None:
                    task.cancel()
                    with suppress(asyncio.CancelledError):
                        await task
            await gateway.stop()

    app = FastAPI(
        title="digits",
        version=first_card.version,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Prometheus and our own tracing are the telemetry; FastAPI's built-in hooks would add a cost per request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.gateway = gateway
    app.state.sticky = sticky
    app.state.metrics_history = history

    def count_error(code: ErrorCode) -> None:
        gateway.metrics.errors.labels(code=code.value).inc()

    errors = ErrorResponder(on_error=count_error)
    errors.install(app)
    # Added innermost first: a request meets metrics, security headers, CORS, the body limit, the key check, the
    # key's quota, then the predict route served directly, or the app.
    app.add_middleware(DirectRoutes, routes=predict.router.routes, on_exception=errors)
    if api_keys is not None and quotas is not None:
        app.add_middleware(QuotaMiddleware, quotas=quotas, on_error=count_error, unmetered=pages.UNMETERED_PATHS)
        protected = protected_paths(settings.auth.auth_metrics)
        app.add_middleware(ApiKeyMiddleware, keys=api_keys, protected=protected, on_error=count_error)
        document_api_keys(app, protected)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.limits.max_body_bytes,
        linger_max_bytes=settings.limits.linger_max_bytes,
        linger_seconds=settings.limits.linger_seconds,
        on_error=count_error,
    )
    if settings.auth.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.auth.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=gateway.metrics)
    for router in (predict.router, models.router, health.router, v2.router, repository.router, rollout.router,
                   pages.router):  # fmt: skip
        app.include_router(router)
    return app
