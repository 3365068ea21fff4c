"""POST /v1/predict: the request read into a call for the served model's inference, and its outcome as JSON."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from service.core.inference import Inference, PredictCall
from service.core.schemas import ErrorResponse, PredictOptions, PredictRequest, PredictResponse
from service.http.dependencies import models_of, routing_key_of
from service.http.middleware import ARRIVED
from service.http.openapi import request_body_schema
from service.http.request_route import RequestRoute
from service.http.requests import read_predict_request
from service.http.responses import JSONBytesResponse

router = APIRouter(tags=["predict"], route_class=RequestRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "empty body, invalid JSON or base64, undecodable or truncated image",
        404: "the version asked for is not loaded (unknown_model)",
        413: "body, image or image count over its limit",
        415: "unsupported content type",
        422: "invalid options, pixels or image size",
        503: "the model is too busy to start this request within DIGITS_MAX_QUEUE_WAIT_MS, or not ready "
        "(both with Retry-After)",
    }.items()
}


REQUEST_BODY = {
    "parameters": [
        {
            "name": "version",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "a loaded model version to answer (default: the one the traffic policy picks)",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": request_body_schema(PredictRequest)},
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
    },
}


ROUTE = "/v1/predict"


@router.post(
    ROUTE,
    summary="Classify handwritten digits",
    responses={200: {"model": PredictResponse}, **ERRORS},
    openapi_extra=REQUEST_BODY,
)
async def predict(request: Request) -> JSONBytesResponse:
    async def read(inference: Inference) -> PredictCall:
        return await read_predict_request(request, inference.limits)

    version = request.query_params.get("version") if request.scope["query_string"] else None  # parsing: 2.5 us
    outcome = await models_of(request).run(
        read, version, routing_key_of(request), route=ROUTE, headers=request.headers, arrived=request.scope.get(ARRIVED)
    )
    return JSONBytesResponse(outcome.body())
