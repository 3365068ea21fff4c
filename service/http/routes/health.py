"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from starlette.responses import Response

from service.http.dependencies import GatewayDep, require_ready
from service.http.responses import JSONBytesResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JSONBytesResponse:
    return JSONBytesResponse({"status": "ok"})


@router.get("/readyz", summary="The model is loaded, warmed up and its backend answers (503 before)")
async def readyz(gateway: GatewayDep) -> JSONBytesResponse:
    models = gateway.models
    await require_ready(models)
    stable = models.stable
    assert stable is not None, "a ready server has a stable version"
    backend = stable.backend
    return JSONBytesResponse(
        {"status": "ready", "backend": backend.name, "device": backend.device, "version": stable.card.version}
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics: the text format, or OpenMetrics with exemplars when the Accept header asks for "
    "application/openmetrics-text",
    response_class=Response,
)
async def metrics(gateway: GatewayDep, request: Request) -> Response:
    if "application/openmetrics-text" in request.headers.get("accept", ""):
        return Response(gateway.metrics.render_openmetrics(), media_type=OPENMETRICS_CONTENT_TYPE)
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)
