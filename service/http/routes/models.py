"""GET /v1/models/digits: the model card and how it is served; GET /v1/models/digits/layers/{name}: one layer's
served parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from service.core.errors import ApiError, ErrorCode
from service.core.layer_parameters import ParameterFormat
from service.core.schemas import ErrorResponse, LayerResponse
from service.http.dependencies import VERSION_ERRORS, GatewayDep, InferenceDep, require_loaded
from service.http.responses import JSONBytesResponse

router = APIRouter(tags=["model"])

LAYER_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {
        "model": ErrorResponse,
        "description": "unknown_layer: the model card lists no such layer; unknown_model: "
        "the version asked for is not loaded",
    },
    422: {"model": ErrorResponse, "description": "invalid_request: format is neither array nor png"},
    503: {"model": ErrorResponse, "description": "not_ready: the model is still loading"},
}


@router.get(
    "/v1/models/digits", summary="Model card plus serving info (backend, device, batching)", responses=VERSION_ERRORS
)
async def model_card(gateway: GatewayDep, inference: InferenceDep) -> JSONBytesResponse:
    return JSONBytesResponse({**inference.card.model_dump(mode="json"), "serving": gateway.serving_info()})


@router.get(
    "/v1/models/digits/layers/{name}",
    summary="One layer's served parameters: convolution weights and bias (batch norm folded), stride, padding",
    responses={200: {"model": LayerResponse}, **LAYER_ERRORS},
)
async def layer(
    inference: InferenceDep,
    name: str,
    format: Annotated[
        ParameterFormat, Query(description="array: base64 float32 with shape; png: the kernels in a grid")
    ] = "array",
) -> JSONBytesResponse:
    parameters = require_loaded(inference).layer_parameters
    if parameters is None:
        raise ApiError(ErrorCode.unknown_layer, f"model version {inference.card.version} has no frozen convolutions "
                       "whose parameters could be read")  # fmt: skip
    return JSONBytesResponse(parameters.describe(name, format))
