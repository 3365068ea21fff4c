"""Our stable error codes as gRPC status codes, by the HTTP status each code is answered with on /v1 and /v2.

- 400, 413, 415, 422 (the request is wrong): INVALID_ARGUMENT (invalid_tensor, too_many_images, ...)
- 401: UNAUTHENTICATED (unauthorized); 403: PERMISSION_DENIED (forbidden)
- 404: NOT_FOUND (unknown_model); 405: UNIMPLEMENTED (method_not_allowed, HTTP's only)
- 409: FAILED_PRECONDITION (version_in_use, rollout_conflict); 429: RESOURCE_EXHAUSTED (quota_exceeded)
- 503 (try again later): UNAVAILABLE (queue_full, not_ready, ...); 504: DEADLINE_EXCEEDED (backend_timeout)
- 500 and anything else: INTERNAL (internal_error)

A message over ``DIGITS_MAX_BODY_BYTES`` is refused by gRPC itself, before our code sees it, as RESOURCE_EXHAUSTED.
The status's details read ``<code>: <message>`` (as the protocol's REST errors do); the code alone is also in the
trailing metadata ``digits-error-code``, with ``retry-after`` when the error carries one.
"""

from __future__ import annotations

import grpc

from service.core.errors import ApiError

ERROR_CODE_KEY = "digits-error-code"

STATUS_BY_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    413: grpc.StatusCode.INVALID_ARGUMENT,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_status(error: ApiError) -> grpc.StatusCode:
    return STATUS_BY_HTTP.get(error.status, grpc.StatusCode.INTERNAL)


def details(error: ApiError) -> str:
    return f"{error.code.value}: {error.message}"


def trailing_metadata(error: ApiError) -> tuple[tuple[str, str], ...]:
    extra = tuple((name.lower(), value) for name, value in error.headers.items())
    return ((ERROR_CODE_KEY, error.code.value), *extra)
