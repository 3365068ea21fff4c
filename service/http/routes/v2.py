"""The Open Inference Protocol v2 (KServe / Triton REST) on the gateway's port, limits, batcher and metrics.

Every model route exists with and without ``/versions/{model_version}``; the protocol's logic is in
service.core.oip, and inference goes through the same inference object as /v1/predict."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.core.errors import ApiError, ErrorCode
from service.core.inference import Inference
from service.core.oip.body import HEADER_LENGTH
from service.core.oip.errors import PATH_PREFIX
from service.core.oip.inference import TensorCall, read_inference, write_inference
from service.core.oip.metadata import MODEL_NAME, server_metadata
from service.core.oip.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ProtocolErrorResponse,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from service.http.dependencies import GatewayDep, models_of, require_ready, routing_key_of
from service.http.openapi import request_body_schema
from service.http.responses import JSONBytesResponse

router = APIRouter(prefix=PATH_PREFIX, tags=["open inference protocol (v2)"])

MODEL = "/models/{model_name}"
VERSION = MODEL + "/versions/{model_version}"


def _errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ProtocolErrorResponse, "description": text} for status, text in descriptions.items()}


NOT_FOUND = _errors({404: "no such model or version (unknown_model)"})
NOT_READY = _errors({503: "the model is still loading or its backend does not answer (not_ready)"})
INFER_ERRORS = _errors(
    {
        400: "an input the model does not take, binary data that disagrees with the body, an unknown output, "
        "invalid JSON or an undecodable image",
        404: "no such model or version",
        413: "body, image or image count over its limit",
        422: "a request of the wrong shape, pixels outside 0-255, an invalid top_k",
        503: "queue full (with Retry-After) or model not ready",
    }
)
INFER_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": request_body_schema(InferenceRequest)},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "An inference request in JSON, or (binary tensor data extension) its JSON header of "
        f"{HEADER_LENGTH} bytes followed by each binary input's binary_data_size bytes, little-endian and "
        "row-major (BYTES elements each preceded by a 4-byte little-endian length). Inputs: exactly one of "
        "'pixels' (FP32 or UINT8, [-1,28,28] or [-1,1,28,28], 0-255, ink bright on black) or 'image' (BYTES [-1]: "
        "image files; base64 text in JSON). Parameters: top_k (1-10), binary_data_output.",
    }
}


def _model(request: Request, name: str, version: str | None) -> Inference:
    """The loaded ``version`` of the model ``name``, or the one the traffic policy picks (``unknown_model``)."""
    if name != MODEL_NAME:
        raise ApiError(ErrorCode.unknown_model, f"no model named '{name}'; this server serves '{MODEL_NAME}'")
    return models_of(request).select(version, routing_key_of(request))


ModelHandler = Callable[[Request, str, str | None], Awaitable[Response]]


def _model_route(method: str, suffix: str, handler: ModelHandler, **documented: Any) -> None:
    """``handler`` on the model's route and on its versioned route (``/versions/{model_version}``)."""

    async def latest(request: Request, model_name: str) -> Response:
        return await handler(request, model_name, None)

    async def versioned(request: Request, model_name: str, model_version: str) -> Response:
        return await handler(request, model_name, model_version)

    for path, endpoint in ((MODEL + suffix, latest), (VERSION + suffix, versioned)):
        router.add_api_route(path, endpoint, methods=[method], name=handler.__name__.strip("_"), **documented)


@router.get("/health/live", summary="The server is live", responses={200: {"model": ServerLive}})
async def server_live() -> JSONBytesResponse:
    return JSONBytesResponse({"live": True})


@router.get("/health/ready", summary="The model is ready", responses={200: {"model": ServerReady}, **NOT_READY})
async def server_ready(gateway: GatewayDep) -> JSONBytesResponse:
    await require_ready(gateway.models)
    return JSONBytesResponse({"ready": True})


@router.get("", summary="Server metadata and extensions", responses={200: {"model": ServerMetadata}})
async def server() -> JSONBytesResponse:
    return JSONBytesResponse(server_metadata())


async def _model_metadata(request: Request, name: str, version: str | None) -> Response:
    models = models_of(request)
    metadata = _model(request, name, version).protocol_model.metadata()
    return JSONBytesResponse(metadata if version is not None else {**metadata, "versions": sorted(models.versions)})


async def _model_ready(request: Request, name: str, version: str | None) -> Response:
    inference = _model(request, name, version)
    if not await inference.ready():
        raise ApiError(ErrorCode.not_ready, "the model is still loading", headers={"Retry-After": "1"})
    return JSONBytesResponse({"name": name, "ready": True})


async def _infer(request: Request, name: str, version: str | None) -> Response:
    if name != MODEL_NAME:
        _model(request, name, version)  # the protocol's unknown_model

    async def read(inference: Inference) -> TensorCall:
        body = await request.body()
        return read_inference(body, request.headers.get(HEADER_LENGTH), inference.protocol_model, inference.limits)

    outcome = await models_of(request).run(read, version, routing_key_of(request))
    answer = write_inference(outcome.call, outcome.output, outcome.inference.protocol_model)
    if answer.header_length is None:
        return JSONBytesResponse(answer.body)
    return Response(
        answer.body, media_type="application/octet-stream", headers={HEADER_LENGTH: str(answer.header_length)}
    )


METADATA_RESPONSES = {200: {"model": ModelMetadata}, **NOT_FOUND}
_model_route("GET", "", _model_metadata, summary="Model metadata", responses=METADATA_RESPONSES)
_model_route(
    "GET",
    "/ready",
    _model_ready,
    summary="The model is ready",
    responses={200: {"model": ModelReady}, **NOT_FOUND, **NOT_READY},
)
_model_route(
    "POST",
    "/infer",
    _infer,
    summary="Inference (JSON or binary tensors)",
    responses={200: {"model": InferenceResponse}, **INFER_ERRORS},
    openapi_extra=INFER_BODY,
)
