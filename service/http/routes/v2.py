"""The Open Inference Protocol v2 (KServe / Triton REST) on the gateway's port, limits, batcher and metrics.

Every model route exists with and without ``/versions/{model_version}``; the protocol's logic is in
service.core.oip, and inference goes through the same pipeline and batcher as /v1/predict."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.core.errors import ApiError, ErrorCode
from service.core.gateway import Gateway
from service.core.oip.body import HEADER_LENGTH
from service.core.oip.errors import PATH_PREFIX
from service.core.oip.inference import read_inference, write_inference
from service.core.oip.metadata import ServedModel, server_metadata
from service.core.oip.schemas import (
    ErrorResponse,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from service.http.dependencies import GatewayDep
from service.http.inference import loaded_gateway, run_batch
from service.http.responses import JSONBytesResponse

router = APIRouter(prefix=PATH_PREFIX, tags=["open inference protocol (v2)"])

MODEL = "/models/{model_name}"
VERSION = MODEL + "/versions/{model_version}"


def _errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": text} for status, text in descriptions.items()}


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
            "application/json": {
                "schema": InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "An inference request in JSON, or (binary tensor data extension) its JSON header of "
        f"{HEADER_LENGTH} bytes followed by each binary input's binary_data_size bytes, little-endian and "
        "row-major (BYTES elements each preceded by a 4-byte little-endian length). Inputs: exactly one of "
        "'pixels' (FP32 or UINT8, [-1,28,28] or [-1,1,28,28], 0-255, ink bright on black) or 'image' (BYTES [-1]: "
        "image files; base64 text in JSON). Parameters: top_k (1-10), binary_data_output.",
    }
}


def _served_model(request: Request, name: str, version: str | None) -> ServedModel:
    model: ServedModel = request.app.state.served_model
    model.check(name, version)
    return model


async def _ready(gateway: Gateway) -> None:
    if not await gateway.ready():
        reason = gateway.setup_error or f"the {gateway.backend.name} backend is not ready"
        raise ApiError(ErrorCode.not_ready, reason, headers={"Retry-After": "1"})


@router.get("/health/live", summary="The server is live", responses={200: {"model": ServerLive}})
async def server_live() -> JSONBytesResponse:
    return JSONBytesResponse({"live": True})


@router.get("/health/ready", summary="The model is ready", responses={200: {"model": ServerReady}, **NOT_READY})
async def server_ready(gateway: GatewayDep) -> JSONBytesResponse:
    await _ready(gateway)
    return JSONBytesResponse({"ready": True})


@router.get("", summary="Server metadata and extensions", responses={200: {"model": ServerMetadata}})
async def server(request: Request) -> JSONBytesResponse:
    return JSONBytesResponse(server_metadata(request.app.version))


@router.get(MODEL, summary="Model metadata", responses={200: {"model": ModelMetadata}, **NOT_FOUND})
async def model_metadata(request: Request, model_name: str) -> JSONBytesResponse:
    return JSONBytesResponse(_served_model(request, model_name, None).metadata())


@router.get(VERSION, summary="Model metadata of a version", responses={200: {"model": ModelMetadata}, **NOT_FOUND})
async def model_version_metadata(request: Request, model_name: str, model_version: str) -> JSONBytesResponse:
    return JSONBytesResponse(_served_model(request, model_name, model_version).metadata())


@router.get(
    MODEL + "/ready", summary="The model is ready", responses={200: {"model": ModelReady}, **NOT_FOUND, **NOT_READY}
)
async def model_ready(request: Request, gateway: GatewayDep, model_name: str) -> JSONBytesResponse:
    _served_model(request, model_name, None)
    await _ready(gateway)
    return JSONBytesResponse({"name": model_name, "ready": True})


@router.get(
    VERSION + "/ready",
    summary="The model version is ready",
    responses={200: {"model": ModelReady}, **NOT_FOUND, **NOT_READY},
)
async def model_version_ready(
    request: Request, gateway: GatewayDep, model_name: str, model_version: str
) -> JSONBytesResponse:
    _served_model(request, model_name, model_version)
    await _ready(gateway)
    return JSONBytesResponse({"name": model_name, "ready": True})


@router.post(
    MODEL + "/infer",
    summary="Inference (JSON or binary tensors)",
    responses={200: {"model": InferenceResponse}, **INFER_ERRORS},
    openapi_extra=INFER_BODY,
)
async def infer(request: Request, model_name: str) -> Response:
    return await _infer(request, model_name, None)


@router.post(
    VERSION + "/infer",
    summary="Inference on a model version (JSON or binary tensors)",
    responses={200: {"model": InferenceResponse}, **INFER_ERRORS},
    openapi_extra=INFER_BODY,
)
async def infer_version(request: Request, model_name: str, model_version: str) -> Response:
    return await _infer(request, model_name, model_version)


async def _infer(request: Request, name: str, version: str | None) -> Response:
    model = _served_model(request, name, version)
    gateway = loaded_gateway(request)
    inference = read_inference(await request.body(), request.headers.get(HEADER_LENGTH), model, gateway.pipeline.limits)
    output = await run_batch(gateway, inference.inputs, inference.preprocess, inference.layers)
    answer = write_inference(inference, output, model)
    gateway.count_predictions(answer.labels)
    if answer.header_length is None:
        return JSONBytesResponse(answer.body)
    return Response(
        answer.body, media_type="application/octet-stream", headers={HEADER_LENGTH: str(answer.header_length)}
    )
