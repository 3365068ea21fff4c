"""Triton's model repository calls over gRPC, as /v2/repository serves them over REST (service/http/routes/
repository.py): the same index, load and unload of :class:`~service.core.served_models.ServedModels`, for admin
keys only. The version travels in the request's ``parameters``: the string ``version``, or (what
``tritonclient.grpc``'s ``load_model(config=...)`` sends) ``config``, a JSON object ``{"version": "X.Y.Z"}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from model.refusal import VersionRefused
from service.core.errors import ApiError, ErrorCode
from service.core.oip.metadata import MODEL_NAME
from service.core.served_models import ServedModels
from service.grpc.generated import predict_v2_pb2 as pb

VERSION = "version"
CONFIG = "config"

Parameters = Mapping[str, pb.ModelRepositoryParameter]


def index(models: ServedModels, request: pb.RepositoryIndexRequest) -> pb.RepositoryIndexResponse:
    entries = models.index()
    if request.ready:
        entries = [entry for entry in entries if entry["state"] == "READY"]
    return pb.RepositoryIndexResponse(models=[pb.RepositoryIndexResponse.ModelIndex(**entry) for entry in entries])


async def load(models: ServedModels, request: pb.RepositoryModelLoadRequest) -> pb.RepositoryModelLoadResponse:
    _check_name(request.model_name)
    chosen = requested_version(request.parameters) or models.loader.repository.latest()
    try:
        await models.load(chosen)
    except VersionRefused as refused:
        raise ApiError(ErrorCode[str(refused.code)], refused.message) from None
    return pb.RepositoryModelLoadResponse()


async def unload(models: ServedModels, request: pb.RepositoryModelUnloadRequest) -> pb.RepositoryModelUnloadResponse:
    _check_name(request.model_name)
    version = requested_version(request.parameters)
    if version is None:
        raise ApiError(ErrorCode.invalid_request, "name the version to unload: the string parameter 'version'")
    await models.unload(version)
    return pb.RepositoryModelUnloadResponse()


def requested_version(parameters: Parameters) -> str | None:
    """The version the parameters name; other parameters (tritonclient's ``unload_dependents``) are ignored, but
    file overrides are refused: versions load from the repository only."""
    if any(parameter.WhichOneof("parameter_choice") == "bytes_param" for parameter in parameters.values()):
        raise ApiError(ErrorCode.invalid_request, "file overrides are not taken: versions load from the repository")
    named = _string(parameters, VERSION)
    configured = _configured_version(_string(parameters, CONFIG))
    if named is not None and configured is not None and named != configured:
        raise ApiError(ErrorCode.invalid_request, f"the parameters name two versions: {named} and {configured}")
    return named or configured


def _string(parameters: Parameters, name: str) -> str | None:
    if name not in parameters:
        return None
    parameter = parameters[name]
    if parameter.WhichOneof("parameter_choice") != "string_param":
        raise ApiError(ErrorCode.invalid_request, f"the parameter '{name}' must be a string_param")
    return parameter.string_param


def _configured_version(config: str | None) -> str | None:
    if config is None:
        return None
    try:
        document: Any = orjson.loads(config)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict) or set(document) != {VERSION} or not isinstance(document[VERSION], str):
        raise ApiError(ErrorCode.invalid_request, 'the parameter \'config\' must be the JSON {"version": "X.Y.Z"}')
    version: str = document[VERSION]
    return version


def _check_name(name: str) -> None:
    if name != MODEL_NAME:
        raise ApiError(ErrorCode.unknown_model, f"no model named '{name}'; this server serves '{MODEL_NAME}'")
