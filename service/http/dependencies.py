"""What routes take from the running app, as Annotated dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.core.errors import ApiError, ErrorCode
from service.core.gateway import Gateway


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_gateway(request: Request) -> Gateway:  # async: FastAPI runs sync dependencies on a thread
    return gateway_of(request)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]


async def require_ready(gateway: Gateway) -> None:
    """Refuse with ``not_ready`` (503) until the model is loaded and its backend answers."""
    if not await gateway.ready():
        reason = gateway.setup_error or f"the {gateway.backend.name} backend is not ready"
        raise ApiError(ErrorCode.not_ready, reason, headers={"Retry-After": "1"})
