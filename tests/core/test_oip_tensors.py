"""Tensor data on the wire: numeric tensors as JSON or little-endian bytes, BYTES as length-prefixed elements."""

from __future__ import annotations

import numpy as np
import pytest

from service.core.errors import ApiError, ErrorCode
from service.core.oip.tensors import (
    bytes_from_binary,
    bytes_from_json,
    numeric_from_binary,
    numeric_from_json,
    to_binary,
    to_json,
)


def prefixed(*elements: bytes) -> bytes:
    return b"".join(len(e).to_bytes(4, "little") + e for e in elements)


def test_numeric_round_trip_little_endian_row_major() -> None:
    values = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = to_binary(values, "FP32")
    assert data == values.astype("<f4").tobytes()
    np.testing.assert_array_equal(numeric_from_binary(data, "FP32", [2, 3], "x"), values)
    assert to_binary(np.array([7, 2]), "INT64") == b"\x07" + b"\x00" * 7 + b"\x02" + b"\x00" * 7
    assert to_json(values.T).tolist() == [0, 3, 1, 4, 2, 5]


def test_json_numbers_flat_or_nested() -> None:
    np.testing.assert_array_equal(numeric_from_json([[1, 2], [3, 4]], [4], "x"), [1, 2, 3, 4])
    np.testing.assert_array_equal(numeric_from_json([1, 2, 3, 4], [2, 2], "x"), [[1, 2], [3, 4]])


@pytest.mark.parametrize("data", [[1, 2, 3], [[1, 2], [3]], ["a", "b", "c", "d"], [{"a": 1}] * 4])
def test_json_data_that_does_not_fill_the_shape_is_refused(data: list[object]) -> None:
    with pytest.raises(ApiError) as refused:
        numeric_from_json(data, [2, 2], "x")
    assert refused.value.code is ErrorCode.invalid_tensor


def test_binary_size_must_match_the_shape() -> None:
    with pytest.raises(ApiError) as refused:
        numeric_from_binary(b"\x00" * 15, "FP32", [2, 2], "x")
    assert refused.value.code is ErrorCode.invalid_tensor and "16" in refused.value.message


def test_bytes_elements_are_length_prefixed() -> None:
    assert bytes_from_binary(prefixed(b"ab", b"", b"cde"), 3, "x") == [b"ab", b"", b"cde"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (prefixed(b"ab")[:-1], ErrorCode.invalid_binary_data),  # an element shorter than its length
        (prefixed(b"ab") + b"\x01\x00", ErrorCode.invalid_binary_data),  # a cut length prefix
        (prefixed(b"ab"), ErrorCode.invalid_tensor),  # one element where the shape says two
    ],
)
def test_malformed_bytes_elements_are_refused(data: bytes, code: ErrorCode) -> None:
    with pytest.raises(ApiError) as refused:
        bytes_from_binary(data, 2, "x")
    assert refused.value.code is code


def test_json_bytes_elements_are_strings() -> None:
    assert bytes_from_json(["a", "b"], 2, "x") == ["a", "b"]
    with pytest.raises(ApiError):
        bytes_from_json(["a", 1], 2, "x")
