"""Reading a JSON predict request: 8-bit pixel rows by orjson, anything else by the schema, with one result."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.requests import Request
from starlette.types import Message

from service.core.errors import ApiError, ErrorCode
from service.core.schemas import PredictOptions, PredictRequest
from service.core.types import Limits
from service.http.requests import _eight_bit_pixels, read_predict_request

LIMITS = Limits(max_images=4, max_pixels=10_000)
ROWS = [[(row * 28 + col) % 256 for col in range(28)] for row in range(28)]
PNG_1X1 = base64.b64encode(
    bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010800000000376ef9240000000a49444154789c63600000000200015e"
                  "f3fc7e0000000049454e44ae426082")
).decode()  # fmt: skip


def read(document: object) -> tuple[PredictOptions, list[Any]]:
    body = orjson.dumps(document)

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    request = Request({"type": "http", "method": "POST", "path": "/v1/predict", "headers": headers}, receive)
    call = asyncio.run(read_predict_request(request, LIMITS))
    return call.options, call.inputs


def option_values(options: PredictOptions) -> dict[str, object]:
    return {name: getattr(options, name) for name in PredictOptions.model_fields}


EIGHT_BIT = [
    {"instances": [{"pixels": ROWS}]},
    {"instances": [{"pixels": ROWS}, {"pixels": [[0, 255], [255, 0]]}], "preprocess": "none", "top_k": 5},
    {"instances": [{"pixels": ROWS}], "features": ["all"], "explain": ["input", "saliency"], "saliency_label": 3},
]
OTHER = [
    {"instances": [{"pixels": [[0.5, 254.5], [3.0, 0]]}]},  # fractions: numpy's path
    {"instances": [{"image": PNG_1X1}]},
    {"instances": [{"pixels": ROWS}, {"image": PNG_1X1}]},
]


@pytest.mark.parametrize("document", EIGHT_BIT + OTHER)
def test_a_body_reads_as_the_schema_reads_it(document: dict[str, Any]) -> None:
    options, inputs = read(document)
    expected = PredictRequest.model_validate(document)
    assert option_values(options) == option_values(expected)
    assert len(inputs) == len(expected.instances)
    for got, instance in zip(inputs, expected.instances, strict=True):
        if isinstance(instance.raw, str):
            assert got == instance.raw
        else:
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, instance.raw)


@pytest.mark.parametrize("document", EIGHT_BIT)
def test_eight_bit_rows_take_the_fast_path(document: dict[str, Any]) -> None:
    assert _eight_bit_pixels(orjson.dumps(document)) is not None


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({"instances": [{"pixels": ROWS}], "top_k": 0}, ErrorCode.invalid_top_k),
        ({"instances": [{"pixels": ROWS}], "colour": "red"}, ErrorCode.invalid_request),
        ({"instances": [{"pixels": ROWS}], "saliency_label": 3}, ErrorCode.invalid_request),
        ({"instances": []}, ErrorCode.invalid_request),
        ({"instances": [{"pixels": [[0, 256]]}]}, ErrorCode.invalid_pixels),
        ({"instances": [{"pixels": [[0, 1], [2]]}]}, ErrorCode.invalid_pixels),
        ({"instances": [{"pixels": [[True, False]]}]}, ErrorCode.invalid_pixels),
        ({"instances": [{"pixels": ROWS, "image": PNG_1X1}]}, ErrorCode.invalid_request),
        ({"instances": [{"pixels": ROWS}] * 5}, ErrorCode.too_many_images),
        ([{"pixels": ROWS}], ErrorCode.invalid_request),
    ],
)
def test_anything_else_is_refused_as_the_schema_refuses_it(document: object, code: ErrorCode) -> None:
    assert _eight_bit_pixels(orjson.dumps(document)) is None or code is ErrorCode.too_many_images
    with pytest.raises(ApiError) as refused:
        read(document)
    assert refused.value.code is code


def test_invalid_json_is_refused_by_the_schema() -> None:
    assert _eight_bit_pixels(b'{"instances": [') is None
