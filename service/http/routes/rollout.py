"""The rollout of a candidate version and the traffic policy, for admin keys only: what ``digits rollout`` calls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from service.core.schemas import ErrorResponse
from service.core.traffic import TrafficPolicy
from service.http.dependencies import AdminOnly, gateway_of
from service.http.responses import JSONBytesResponse

router = APIRouter(prefix="/v1", tags=["rollout (admin)"], dependencies=[AdminOnly])

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "the body is not valid JSON (invalid_json)",
        401: "no API key",
        403: "not an admin key, or no key file at all",
        404: "no such version",
        409: "a rollout is running already, or there is none to end (rollout_conflict)",
        422: "the candidate was refused at load, or the plan is not valid",
    }.items()
}


class RolloutRequest(BaseModel):
    candidate: str = Field(description="the version to roll out; loaded first if it is not")
    steps: list[str] | None = Field(None, description="the plan (default DIGITS_ROLLOUT_STEPS): shadow,5,25,50,100")


@router.get("/rollout", summary="The serving state, and the running step's figures per version", responses=ERRORS)
async def rollout_status(request: Request) -> JSONBytesResponse:
    return JSONBytesResponse(gateway_of(request).rollout.report())


@router.post("/rollout/start", summary="Start rolling out a candidate version", status_code=202, responses=ERRORS)
async def start_rollout(request: Request, body: RolloutRequest) -> JSONBytesResponse:
    controller = gateway_of(request).rollout
    await controller.start(body.candidate, body.steps)
    return JSONBytesResponse(controller.report(), status_code=202)


@router.post("/rollout/abort", summary="Stop the running rollout: all traffic to stable", responses=ERRORS)
async def abort_rollout(request: Request) -> JSONBytesResponse:
    controller = gateway_of(request).rollout
    await controller.abort()
    return JSONBytesResponse(controller.report())


@router.post("/rollout/rollback", summary="Back to the previous stable version now", responses=ERRORS)
async def rollback(request: Request) -> JSONBytesResponse:
    controller = gateway_of(request).rollout
    await controller.rollback()
    return JSONBytesResponse(controller.report())


@router.put("/traffic", summary="Set the traffic policy by hand (its versions are loaded first)", responses=ERRORS)
async def set_traffic(request: Request, policy: TrafficPolicy) -> JSONBytesResponse:
    controller = gateway_of(request).rollout
    await controller.set_policy(policy)
    return JSONBytesResponse(controller.report())
