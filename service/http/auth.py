"""Optional API keys: ``Authorization: Bearer <key>`` on the API routes when DIGITS_API_KEYS_FILE is set."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service.core.api_keys import ApiKeys, Caller, bearer_key
from service.core.errors import ApiError, ErrorCode
from service.core.oip.errors import speaks_protocol
from service.core.oip.schemas import ProtocolErrorResponse
from service.core.schemas import ErrorResponse
from service.http.error_handlers import error_response

# Every route of the API, whatever its version: the model routes live under these too.
API_PREFIXES = ("/v1/", "/v2/")
OPERATIONS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="digits"'}


def protected_paths(auth_metrics: bool) -> Callable[[str], bool]:
    """Which paths need a key: the API, and with ``auth_metrics`` the health and metrics endpoints too."""
    also: Collection[str] = OPERATIONS_PATHS if auth_metrics else ()

    def protected(path: str) -> bool:
        return path.startswith(API_PREFIXES) or path in also

    return protected


class ApiKeyMiddleware:
    """Answers 401 ``unauthorized`` (with ``WWW-Authenticate``) to a protected request without a known key.
    Whose key it is (a :class:`~service.core.api_keys.Caller`) goes into ``scope["state"]["caller"]``; the key
    itself goes nowhere."""

    def __init__(
        self, app: ASGIApp, keys: ApiKeys, protected: Callable[[str], bool], on_error: Callable[[ErrorCode], None]
    ) -> None:
        self.app = app
        self.keys = keys
        self.protected = protected
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not self.protected(scope["path"]):
            await self.app(scope, receive, send)
            return
        caller = self._caller(dict(scope["headers"]).get(b"authorization", b""))
        if caller is None:
            error = ApiError(
                ErrorCode.unauthorized, "this API needs a key: send 'Authorization: Bearer <key>'", headers=CHALLENGE
            )
            self.on_error(error.code)
            await error_response(error, scope["path"])(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)

    def _caller(self, header: bytes) -> Caller | None:
        key = bearer_key(header.decode("latin-1"))
        return None if key is None else self.keys.identify(key)


def document_api_keys(app: FastAPI, protected: Callable[[str], bool]) -> None:
    """Declare the bearer scheme in the OpenAPI document, with a 401, on every operation that needs a key."""
    plain_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = plain_openapi()
        components = document.setdefault("components", {})
        components.setdefault("securitySchemes", {})["apiKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "a key whose sha256 is listed in DIGITS_API_KEYS_FILE",
        }
        schemas = components.setdefault("schemas", {})
        schemas.setdefault("ErrorResponse", ErrorResponse.model_json_schema())
        schemas.setdefault("ProtocolErrorResponse", ProtocolErrorResponse.model_json_schema())
        for path, operations in document.get("paths", {}).items():
            if protected(path):
                shape = "ProtocolErrorResponse" if speaks_protocol(path) else "ErrorResponse"
                unauthorized = {
                    "description": "no key, or not a known one",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{shape}"}}},
                }
                for operation in operations.values():
                    operation["security"] = [{"apiKey": []}]
                    operation.setdefault("responses", {})["401"] = unauthorized
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
