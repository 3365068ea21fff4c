"""A route for endpoints that take the Request and build their Response themselves."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


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

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler
