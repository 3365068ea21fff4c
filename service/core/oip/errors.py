"""Errors in the protocol's shape: ``{"error": "<code>: <message>", "code": "<code>", "index": 3}``.

Clients of the protocol read ``error`` (tritonclient raises it as the exception's message), so the stable code
starts the message; ``code`` and ``index`` carry it for programs."""

from __future__ import annotations

from typing import Any

import orjson

from service.core.errors import ApiError

# Every route of the protocol lives under this prefix, and so do its errors.
PATH_PREFIX = "/v2"


def speaks_protocol(path: str) -> bool:
    return path == PATH_PREFIX or path.startswith(PATH_PREFIX + "/")


def error_body(error: ApiError) -> bytes:
    body: dict[str, Any] = {"error": f"{error.code.value}: {error.message}", "code": error.code.value}
    if error.index is not None:
        body["index"] = error.index
    return orjson.dumps(body)
