"""RequestRoute: endpoints that take the bare Request, documented like any other route; DirectRoutes, which serves
them without the router."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse, Response

from service.core.errors import ApiError, ErrorCode
from service.http.error_handlers import ErrorResponder
from service.http.request_route import DirectRoutes, RequestRoute


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


async def fails_with_an_api_error(request: Request) -> Response:
    raise ApiError(ErrorCode.queue_full, "too busy", headers={"Retry-After": "1"})


async def fails_unexpectedly(request: Request) -> Response:
    raise RuntimeError("a secret detail")


async def route_path(request: Request) -> Response:
    return PlainTextResponse(request.scope["route"].path)


def direct_app(codes: list[ErrorCode]) -> FastAPI:
    """An app whose RequestRoute routes are served by DirectRoutes, its errors mapped as the gateway maps them."""
    router = APIRouter(route_class=RequestRoute)
    router.add_api_route("/items/{item}", route_path, methods=["POST"])
    router.add_api_route("/busy", fails_with_an_api_error, methods=["POST"])
    router.add_api_route("/broken", fails_unexpectedly, methods=["POST"])
    app = FastAPI()
    errors = ErrorResponder(on_error=codes.append)
    errors.install(app)
    app.add_middleware(DirectRoutes, routes=router.routes, on_exception=errors)
    app.include_router(router)
    return app


def test_direct_routes_answer_with_the_route_set_as_the_router_would() -> None:
    with TestClient(direct_app([])) as client:
        answer = client.post("/items/7")
    assert (answer.status_code, answer.text) == (200, "/items/{item}")  # the template labels request metrics


def test_failures_of_direct_routes_go_through_the_error_map() -> None:
    codes: list[ErrorCode] = []
    with TestClient(direct_app(codes), raise_server_exceptions=False) as client:
        busy = client.post("/busy")
        broken = client.post("/broken")
    assert (busy.status_code, busy.json()["error"]["code"], busy.headers["Retry-After"]) == (503, "queue_full", "1")
    assert (broken.status_code, broken.json()["error"]["code"]) == (500, "internal_error")
    assert "secret" not in broken.text
    assert codes == [ErrorCode.queue_full, ErrorCode.internal_error]


def test_other_methods_and_paths_go_on_to_the_router() -> None:
    codes: list[ErrorCode] = []
    with TestClient(direct_app(codes)) as client:
        wrong_method = client.get("/items/7")
        unknown = client.post("/nowhere")
    assert (wrong_method.status_code, wrong_method.json()["error"]["code"]) == (405, "method_not_allowed")
    assert wrong_method.headers["Allow"] == "POST"
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "not_found")
    assert codes == [ErrorCode.method_not_allowed, ErrorCode.not_found]


def test_direct_routes_refuse_routes_they_cannot_call_at_construction() -> None:
    router = APIRouter()
    router.add_api_route("/plain", sync_endpoint, methods=["POST"])
    app = FastAPI()
    app.add_middleware(DirectRoutes, routes=router.routes, on_exception=ErrorResponder(on_error=print))
    with pytest.raises(TypeError, match="route_class=RequestRoute"), TestClient(app):
        pass


def test_direct_routes_are_served_without_the_router() -> None:
    router = APIRouter(route_class=RequestRoute)
    router.add_api_route("/items/{item}", route_path, methods=["POST"])
    app = FastAPI()  # the router is not included: only DirectRoutes can answer
    app.add_middleware(DirectRoutes, routes=router.routes, on_exception=ErrorResponder(on_error=print))
    with TestClient(app) as client:
        assert client.post("/items/7").text == "/items/{item}"
        assert client.get("/items/7").status_code == 404
