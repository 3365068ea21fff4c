"""GET /v1/models/digits: the model card and how it is served."""

from __future__ import annotations

from fastapi import APIRouter

from service.http.dependencies import GatewayDep
from service.http.responses import JSONBytesResponse

router = APIRouter(tags=["model"])


@router.get("/v1/models/digits", summary="Model card plus serving info (backend, device, batching)")
async def model_card(gateway: GatewayDep) -> JSONBytesResponse:
    return JSONBytesResponse({**gateway.card.model_dump(mode="json"), "serving": gateway.serving_info()})
