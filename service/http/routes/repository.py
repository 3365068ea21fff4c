"""The Open Inference Protocol's model repository extension (Triton's): the index of versions, and loading and
unloading one, for admin keys only. ``tritonclient``'s ``get_model_repository_index``, ``load_model`` and
``unload_model`` work unchanged; the version is the query parameter ``version``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from model.refusal import VersionRefused
from service.core.errors import ApiError, ErrorCode
from service.core.oip.errors import PATH_PREFIX
from service.core.oip.metadata import MODEL_NAME
from service.core.oip.schemas import ProtocolErrorResponse
from service.http.dependencies import AdminOnly, models_of
from service.http.responses import JSONBytesResponse

router = APIRouter(prefix=f"{PATH_PREFIX}/repository", tags=["model repository (admin)"], dependencies=[AdminOnly])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProtocolErrorResponse, "description": text}
    for status, text in {
        401: "no API key",
        403: "not an admin key, or no key file at all",
        404: "no such model or version",
        409: "the stable version cannot be unloaded (version_in_use)",
        422: "the version was refused: corrupt_artifact, hash_mismatch, wrong_input_shape, failed_probe, ...",
    }.items()
}
VERSION = Query(None, description="the version (default for a load: the repository's newest)")


def _check_name(name: str) -> None:
    if name != MODEL_NAME:
        raise ApiError(ErrorCode.unknown_model, f"no model named '{name}'; this server serves '{MODEL_NAME}'")


@router.post("/index", summary="Every version in the repository, with its state", responses=ERRORS)
async def index(request: Request) -> JSONBytesResponse:
    return JSONBytesResponse(models_of(request).index())


@router.post("/models/{model_name}/load", summary="Load a version: read, check, load, warm, probe", responses=ERRORS)
async def load(request: Request, model_name: str, version: str | None = VERSION) -> JSONBytesResponse:
    _check_name(model_name)
    models = models_of(request)
    chosen = version or models.loader.repository.latest()
    try:
        await models.load(chosen)
    except VersionRefused as refused:
        raise ApiError(ErrorCode[str(refused.code)], refused.message) from None
    return JSONBytesResponse({})


@router.post("/models/{model_name}/unload", summary="Unload a version once it finished its requests", responses=ERRORS)
async def unload(request: Request, model_name: str, version: str | None = VERSION) -> JSONBytesResponse:
    _check_name(model_name)
    if version is None:
        raise ApiError(ErrorCode.invalid_request, "name the version to unload: ?version=X.Y.Z")
    await models_of(request).unload(version)
    return JSONBytesResponse({})
