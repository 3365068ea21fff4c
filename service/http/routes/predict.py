"""POST /v1/predict: request -> validation -> pipeline (decode, field, normalize) -> batcher -> backend -> response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.core.schemas import ErrorResponse, PredictOptions, PredictRequest, PredictResponse
from service.http.inference import loaded_gateway, run_batch, run_explained_batch
from service.http.openapi import request_body_schema
from service.http.requests import read_predict_request
from service.http.responses import JSONBytesResponse

router = APIRouter(tags=["predict"])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "empty body, invalid JSON or base64, undecodable or truncated image",
        413: "body, image or image count over its limit",
        415: "unsupported content type",
        422: "invalid options, pixels or image size",
        503: "queue full (with Retry-After) or model not ready",
    }.items()
}

REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": request_body_schema(PredictRequest)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
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
    gateway = loaded_gateway(request)
    pipeline = gateway.pipeline
    options, inputs = await read_predict_request(request, pipeline.limits)
    layers = pipeline.layers(options.features)
    if options.explain:
        stages = "preprocessing" in options.explain
        outputs = pipeline.outputs(layers, options)
        output, traces = await run_explained_batch(gateway, inputs, options.preprocess, outputs, stages)
        items = pipeline.predictions(output, options, layers, traces)
    else:
        output = await run_batch(gateway, inputs, options.preprocess, layers)
        items = pipeline.predictions(output, options, layers)
    gateway.count_predictions(item["label"] for item in items)
    return JSONBytesResponse(pipeline.body(items))
