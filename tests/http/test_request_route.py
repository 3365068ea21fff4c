"""RequestRoute: endpoints that take the bare Request, documented like any other route."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse, Response

from service.http.request_route import RequestRoute


async def echo_path(request: Request) -> Response:
    return PlainTextResponse(request.url.path)


def test_the_endpoint_gets_the_request_and_the_route_is_documented() -> None:
    router = APIRouter(route_class=RequestRoute)
    router.add_api_route("/echo", echo_path, methods=["POST"], summary="Echo the path")
    app = FastAPI()
    app.include_router(router)
    with TestClient(app) as client:
        assert client.post("/echo").text == "/echo"
        assert client.get("/openapi.json").json()["paths"]["/echo"]["post"]["summary"] == "Echo the path"


async def takes_a_query_parameter(request: Request, top_k: int) -> Response:
    return PlainTextResponse(str(top_k))


def sync_endpoint(request: Request) -> Response:
    return PlainTextResponse("")


@pytest.mark.parametrize("endpoint", [takes_a_query_parameter, sync_endpoint])
def test_endpoints_that_need_fastapis_handling_are_refused_at_construction(endpoint: object) -> None:
    router = APIRouter(route_class=RequestRoute)
    with pytest.raises(TypeError, match="give other endpoints the default APIRoute"):
        router.add_api_route("/x", endpoint, methods=["POST"])  # type: ignore[arg-type]
