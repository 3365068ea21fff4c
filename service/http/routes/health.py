"""Liveness, readiness and the Prometheus endpoint."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
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


@router.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
async def metrics(gateway: GatewayDep) -> Response:
    return Response(gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)
