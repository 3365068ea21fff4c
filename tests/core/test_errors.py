"""The error vocabulary: every code carries its HTTP status, and the body has one shape."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from service.core.errors import ApiError, ErrorCode, from_validation_errors
from service.core.schemas import PredictRequest


def test_every_code_has_a_client_or_server_error_status() -> None:
    assert all(400 <= code.status < 600 for code in ErrorCode)
    assert {code.value for code in ErrorCode} == {code.name for code in ErrorCode}
    assert ErrorCode("queue_full") is ErrorCode.queue_full and ErrorCode.queue_full.status == 503
    assert [code for code in ErrorCode if code.status == 500] == [ErrorCode.internal_error]


def test_the_error_body_shape() -> None:
    error = ApiError(ErrorCode.image_empty, "no ink", index=2)
    assert error.status == 422
    assert orjson.loads(error.body()) == {"error": {"code": "image_empty", "message": "no ink", "index": 2}}
    assert "index" not in orjson.loads(ApiError(ErrorCode.not_ready, "loading").body())["error"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"instances": [{"pixels": [[0]]}], "top_k": 0}, ErrorCode.invalid_top_k),
        ({"instances": [{"pixels": [["a"]]}]}, ErrorCode.invalid_pixels),
        ({"instances": [{"pixels": [[0]]}], "features": 5}, ErrorCode.invalid_request),
        ({"instances": [{"pixels": [[0]]}], "features": [1, 2]}, ErrorCode.invalid_request),
    ],
)
def test_validation_errors_get_the_code_of_their_field(body: dict[str, object], code: ErrorCode) -> None:
    with pytest.raises(ValidationError) as error:
        PredictRequest.model_validate(body)
    assert from_validation_errors(list(error.value.errors())).code == code
