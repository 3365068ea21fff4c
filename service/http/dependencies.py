"""What routes take from the running app, as Annotated dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.core.errors import ApiError, ErrorCode
from service.core.gateway import Gateway
from service.core.inference import Inference


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def inference_of(request: Request) -> Inference:
    """The served model's inference object; the inference routes call this rather than a dependency, since on
    their hot path the dependency solver's ~30 us are 10 % of the CPU."""
    inference: Inference = request.app.state.gateway.inference
    return inference


async def get_gateway(request: Request) -> Gateway:  # async: FastAPI runs sync dependencies on a thread
    return gateway_of(request)


async def get_inference(request: Request) -> Inference:
    return inference_of(request)


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
InferenceDep = Annotated[Inference, Depends(get_inference)]


async def require_ready(inference: Inference) -> None:
    """Refuse with ``not_ready`` (503) until the model is loaded and its backend answers."""
    if not await inference.ready():
        reason = inference.setup_error or f"the {inference.backend.name} backend is not ready"
        raise ApiError(ErrorCode.not_ready, reason, headers={"Retry-After": "1"})


def require_loaded(inference: Inference) -> Inference:
    """``inference`` once its model is loaded (``not_ready`` before)."""
    if not inference.loaded:
        raise ApiError(ErrorCode.not_ready, "the model is still loading", headers={"Retry-After": "1"})
    return inference
