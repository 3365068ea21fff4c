"""Every error code has a deliberate gRPC status: only internal_error is INTERNAL."""

from __future__ import annotations

import grpc
import pytest

from service.core.errors import ApiError, ErrorCode
from service.grpc.status import ERROR_CODE_KEY, details, grpc_status, trailing_metadata


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_maps_to_a_status_of_its_own_kind(code: ErrorCode) -> None:
    status = grpc_status(ApiError(code, "message"))
    assert (status == grpc.StatusCode.INTERNAL) == (code == ErrorCode.internal_error)
    if code.status < 500:
        assert status not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_the_code_and_retry_after_travel_in_the_trailing_metadata() -> None:
    error = ApiError(ErrorCode.queue_full, "queue full", headers={"Retry-After": "1"})
    assert details(error) == "queue_full: queue full"
    assert trailing_metadata(error) == ((ERROR_CODE_KEY, "queue_full"), ("retry-after", "1"))
