"""What routes take from the running app, as Annotated dependencies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request

from service.core.api_keys import require_admin
from service.core.errors import ApiError, ErrorCode
from service.core.gateway import Gateway
from service.core.inference import Inference
from service.core.schemas import ErrorResponse
from service.core.served_models import ServedModels

VERSION_QUERY = Query(description="a loaded model version (default: the one the traffic policy picks)")


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def models_of(request: Request) -> ServedModels:
    """The served model versions; the inference routes call this rather than a dependency, since on their hot path
    the dependency solver's cost is a large share of the CPU (docs/architecture.md)."""
    models: ServedModels = request.app.state.gateway.models
    return models


def routing_key_of(request: Request) -> str | None:
    """What keeps a client on one version while a candidate takes a share (DIGITS_TRAFFIC_STICKY)."""
    sticky = request.app.state.sticky
    if sticky is None:
        return None
    if sticky == "api_key":
        caller = request.scope.get("state", {}).get("caller")
        return None if caller is None else str(caller.name)
    value: str | None = request.headers.get(sticky)
    return value


async def get_gateway(request: Request) -> Gateway:  # async: FastAPI runs sync dependencies on a thread
    return gateway_of(request)


async def get_inference(request: Request, version: Annotated[str | None, VERSION_QUERY] = None) -> Inference:
    """The loaded ``version``, or the one the traffic policy picks."""
    return models_of(request).select(version, routing_key_of(request))


# What a route that takes ``?version=`` may answer beside its own errors.
VERSION_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "the version asked for is not loaded (unknown_model)"},
    503: {"model": ErrorResponse, "description": "not_ready: the model is still loading"},
}

GatewayDep = Annotated[Gateway, Depends(get_gateway)]
InferenceDep = Annotated[Inference, Depends(get_inference)]


async def require_ready(models: ServedModels) -> None:
    """Refuse with ``not_ready`` (503) until the stable version is loaded and its backend answers."""
    if not await models.ready():
        stable = models.stable
        reason = models.setup_error or (
            "the model is still loading" if stable is None else f"the {stable.backend.name} backend is not ready"
        )
        raise ApiError(ErrorCode.not_ready, reason, headers={"Retry-After": "1"})


def require_loaded(inference: Inference) -> Inference:
    """``inference`` once its model is loaded (``not_ready`` before)."""
    if not inference.loaded:
        raise ApiError(ErrorCode.not_ready, "the model is still loading", headers={"Retry-After": "1"})
    return inference


async def require_admin_caller(request: Request) -> None:
    """Refuse a caller that is not an admin (service.core.api_keys.require_admin)."""
    require_admin(request.scope.get("state", {}).get("caller"))


AdminOnly = Depends(require_admin_caller)
