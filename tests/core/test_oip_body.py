"""The binary tensor data extension's framing: JSON header, then each binary tensor's bytes in order."""

from __future__ import annotations

import pytest

from service.core.errors import ApiError, ErrorCode
from service.core.oip.body import binary_sizes, join_body, split_binary, split_body


def test_split_body_by_header_length() -> None:
    assert split_body(b'{"a":1}xyz', "7") == (b'{"a":1}', b"xyz")
    assert split_body(b'{"a":1}', None) == (b'{"a":1}', b"")


@pytest.mark.parametrize("length", ["8", "-1", "seven", ""])
def test_a_header_length_beyond_the_body_or_not_a_count_is_refused(length: str) -> None:
    with pytest.raises(ApiError) as refused:
        split_body(b'{"a":1}', length)
    assert refused.value.code is ErrorCode.invalid_binary_data


def test_binary_parts_follow_the_tensors_order() -> None:
    assert split_binary(b"aabbb", [2, None, 3]) == [b"aa", None, b"bbb"]
    assert split_binary(b"", [None]) == [None]


@pytest.mark.parametrize(("data", "sizes"), [(b"abc", [2]), (b"abc", [4]), (b"abc", [None])])
def test_sizes_that_disagree_with_the_body_are_refused(data: bytes, sizes: list[int | None]) -> None:
    with pytest.raises(ApiError) as refused:
        split_binary(data, sizes)
    assert refused.value.code is ErrorCode.invalid_binary_data


@pytest.mark.parametrize("size", [-1, 1.5, "3", True])
def test_binary_data_size_must_be_a_byte_count(size: bool | int | float | str) -> None:
    with pytest.raises(ApiError) as refused:
        binary_sizes([{"binary_data_size": size}])
    assert refused.value.code is ErrorCode.invalid_binary_data


def test_join_body_gives_the_header_length_only_with_binary_data() -> None:
    assert join_body({"a": 1}, []) == (b'{"a":1}', None)
    assert join_body({"a": 1}, [b"xy", b"z"]) == (b'{"a":1}xyz', 7)
