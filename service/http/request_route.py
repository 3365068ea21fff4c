"""A route for endpoints that take the Request and build their Response themselves, and the middleware that
serves such routes directly."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class RequestRoute(APIRoute):
    """FastAPI documents the route (OpenAPI, from its ``responses`` and ``openapi_extra``) but calls the endpoint
    with the bare Request: no dependency solving, no response-model serialization. The inference routes read
    their bodies themselves, and on their hot path that machinery costs more than reading the request does."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        parameters = list(inspect.signature(endpoint).parameters.values())
        if len(parameters) != 1 or not inspect.iscoroutinefunction(endpoint):
            raise TypeError(
                f"{endpoint.__qualname__} must be `async def (request: Request) -> Response` to use RequestRoute; "
                "give other endpoints the default APIRoute"
            )
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Endpoint:
        handler: Endpoint = self.endpoint
        return handler


class DirectRoutes:
    """Innermost middleware that serves ``routes`` itself: a request that matches one goes straight to its
    endpoint, past Starlette's exception layer, FastAPI's exit stack and the router (a share of a
    prediction's CPU: docs/architecture.md), and its failures go to ``on_exception``, the handler FastAPI has for
    every exception type.
    Anything else, a matching path with another method included, goes on to the app as before.

    The routes stay in the app, where FastAPI documents them; they must be included without a prefix.
    """

    def __init__(
        self,
        app: ASGIApp,
        routes: Sequence[BaseRoute],
        on_exception: Callable[[Request, Exception], Awaitable[Response]],
    ) -> None:
        self.app = app
        self.routes: list[tuple[RequestRoute, Endpoint]] = []
        for route in routes:
            if not isinstance(route, RequestRoute):
                raise TypeError(
                    "DirectRoutes serves RequestRoute routes only: give their router route_class=RequestRoute"
                )
            self.routes.append((route, route.get_route_handler()))
        self.on_exception = on_exception

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route, endpoint in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    scope["route"] = route  # what the request metrics are labelled by, as the router sets it
                    await self._serve(endpoint, Request(scope, receive), send)
                    return
        await self.app(scope, receive, send)

    async def _serve(self, endpoint: Endpoint, request: Request, send: Send) -> None:
        try:
            response = await endpoint(request)
        except Exception as exc:  # every failure becomes the error map's response
            response = await self.on_exception(request, exc)
        await response(request.scope, request.receive, send)
