"""The protocol's JSON objects: the inference request we read, and the answers (for the OpenAPI document and tests)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

# A parameter value: the protocol allows strings, numbers and booleans (bool first, so true stays a bool).
Parameter = bool | int | float | str
Parameters = dict[str, Parameter]


class RequestInput(BaseModel):
    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str
    parameters: Parameters = Field(default_factory=dict)
    data: list[Any] | None = Field(None, description="row-major tensor data, flat or nested; absent when binary")


class RequestOutput(BaseModel):
    name: str
    parameters: Parameters = Field(default_factory=dict)


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: Parameters = Field(default_factory=dict)
    inputs: Annotated[list[RequestInput], Field(min_length=1)]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for a variable dimension (the batch)")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ProtocolErrorResponse(BaseModel):
    """The protocol's error object, with our stable code and the offending input's index beside the message."""

    error: str
    code: str
    index: int | None = None
