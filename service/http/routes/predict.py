"""POST /v1/predict: request -> validation -> pipeline (decode, field, normalize) -> batcher -> backend -> response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from service.core.errors import ApiError, ErrorCode
from service.core.schemas import ErrorResponse, PredictOptions, PredictRequest, PredictResponse
from service.core.types import RawInput
from service.http.dependencies import gateway_of
from service.http.requests import read_predict_request
from service.http.responses import JSONBytesResponse

router = APIRouter(tags=["predict"])

# Decoding this many bytes of images takes milliseconds: do it on a worker thread so the
# event loop keeps serving; smaller inputs are cheaper to handle inline than to hand over.
OFFLOAD_BYTES = 256 * 1024

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "empty body, invalid JSON or base64, undecodable or truncated image",
        413: "body, image or image count over its limit",
        415: "unsupported content type",
        422: "invalid options, pixels or image size",
        503: "the model is too busy to start this request within DIGITS_MAX_QUEUE_WAIT_MS, or not ready "
        "(both with Retry-After)",
    }.items()
}


def _without_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its ``$defs`` written in where they are referenced: the document stays self-contained
    (pydantic's ``#/$defs/...`` references would point nowhere inside an OpenAPI document)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _without_refs(PredictRequest.model_json_schema())},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}, "minItems": 1}
                    },
                    "required": ["file"],
                },
                "encoding": {"file": {"contentType": "image/*"}},
            },
        },
        "description": "JSON instances (base64 images or pixel arrays), or image files as multipart parts "
        "named 'file' with options as query parameters: "
        + ", ".join(f"{name} ({field.description})" for name, field in PredictOptions.model_fields.items()),
    }
}


@router.post(
    "/v1/predict",
    summary="Classify handwritten digits",
    responses={200: {"model": PredictResponse}, **ERRORS},
    openapi_extra=REQUEST_BODY,
)
async def predict(request: Request) -> JSONBytesResponse:
    gateway = gateway_of(request)  # not a dependency: on this hot path the solver's ~30 us are 10 % of the CPU
    if not gateway.loaded:
        raise ApiError(ErrorCode.not_ready, "the model is still loading", headers={"Retry-After": "1"})
    pipeline = gateway.pipeline
    with gateway.batcher.arrival():  # under overload, refused before its body is read and decoded
        options, inputs = await read_predict_request(request, pipeline.limits)
        layers = pipeline.layers(options.features)
        if _encoded_bytes(inputs) > OFFLOAD_BYTES:
            batch = await run_in_threadpool(pipeline.prepare, inputs, options.preprocess)
        else:
            batch = pipeline.prepare(inputs, options.preprocess)
    output = await gateway.batcher.submit(batch, frozenset(layers))
    items = pipeline.predictions(output, options, layers)
    gateway.count_predictions(item["label"] for item in items)
    return JSONBytesResponse(pipeline.body(items))


def _encoded_bytes(inputs: list[RawInput]) -> int:
    """Bytes of image files and base64 text: what decoding costs grows with."""
    return sum(len(raw) for raw in inputs if isinstance(raw, bytes | str))
