"""The multipart reader on its own: the files it keeps, however the body arrives, and every limit and refusal."""

from __future__ import annotations

import pytest
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from service.core.errors import ApiError, ErrorCode
from service.http.multipart import MAX_FIELD_BYTES, read_files

CONTENT_TYPE = "multipart/form-data; boundary=bnd"
END = b"--bnd--\r\n"


def part(data: bytes, name: str = "file", filename: str | None = "a.png", headers: bytes = b"") -> bytes:
    disposition = f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
    return f"--bnd\r\nContent-Disposition: {disposition}\r\n".encode() + headers + b"\r\n" + data + b"\r\n"


def request(body: bytes, content_type: str = CONTENT_TYPE, chunk: int | None = None) -> Request:
    size = chunk or max(len(body), 1)
    messages: list[Message] = [
        {"type": "http.request", "body": body[i : i + size], "more_body": i + size < len(body)}
        for i in range(0, max(len(body), 1), size)
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
    return Request(scope, receive)


async def files_of(body: bytes, content_type: str = CONTENT_TYPE, chunk: int | None = None) -> list[bytes]:
    return await read_files(request(body, content_type, chunk), name="file", max_files=3, max_fields=2)


async def refusal(body: bytes, content_type: str = CONTENT_TYPE) -> ApiError:
    with pytest.raises(ApiError) as excinfo:
        await files_of(body, content_type)
    return excinfo.value


@pytest.mark.parametrize("chunk", [None, 1, 7, 64])
async def test_keeps_the_file_parts_named_file_in_order(chunk: int | None) -> None:
    # Data that looks like the start of a boundary makes the parser hand it over in pieces.
    tricky = b"\x89PNG\r\n--bn\r\n-" + bytes(range(256))
    body = part(b"one") + part(b"field", filename=None) + part(tricky) + part(b"other", name="x") + END
    assert await files_of(body, chunk=chunk) == [b"one", tricky]


async def test_an_empty_file_part_is_kept_empty() -> None:
    assert await files_of(part(b"") + part(b"two") + END) == [b"", b"two"]


async def test_headers_are_case_insensitive_and_quoted_boundaries_work() -> None:
    body = part(b"one").replace(b"Content-Disposition", b"CONTENT-DISPOSITION") + END
    assert await files_of(body, 'multipart/form-data; boundary="bnd"') == [b"one"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(part(b"one", filename=None) + END, id="a field named file, not a file"),
        pytest.param(part(b"one", name="File") + END, id="another name"),
        pytest.param(b"", id="no body"),
        pytest.param(part(b"one"), id="no closing boundary"),
    ],
)
async def test_no_file_named_file(body: bytes) -> None:
    assert await files_of(body) == []


async def test_too_many_files_counts_every_file_part() -> None:
    assert len(await files_of(part(b"x") * 3 + END)) == 3
    error = await refusal(part(b"x") * 2 + part(b"y", name="other") * 2 + END)
    assert error.code == ErrorCode.too_many_images and error.message == "too many files; the limit is 3"


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (part(b"v", filename=None) * 3 + END, CONTENT_TYPE, "Too many fields. Maximum number of fields is 2."),
        (part(b"v" * (MAX_FIELD_BYTES + 1), filename=None) + END, CONTENT_TYPE, "Part exceeded maximum size"),
        (b"--bnd\r\nContent-Disposition: form-data\r\n\r\nx\r\n" + END, CONTENT_TYPE, '"name" must be provided'),
        (b"--bnd\r\nContent-Type: image/png\r\n\r\nx\r\n" + END, CONTENT_TYPE, '"name" must be provided'),
        (b"hello world", CONTENT_TYPE, "Invalid multipart data."),
        (b"--bnd\r\n: x\r\n\r\n" + END, CONTENT_TYPE, "Invalid multipart data."),
        (part(b"x", headers=b"X-A: 1\r\n" * 20) + END, CONTENT_TYPE, "Invalid multipart data."),
        (part(b"x") + END, "multipart/form-data; boundary=other", "Invalid multipart data."),
        (part(b"x") + END, "multipart/form-data; boundary=" + "b" * 300, "Invalid multipart data."),
        (part(b"x") + END, "multipart/form-data", "Missing boundary in multipart."),
    ],
    ids=[
        "too many fields",
        "field too large",
        "no name",
        "no content-disposition",
        "not multipart",
        "empty header name",
        "too many headers",
        "wrong boundary",
        "boundary too long",
        "no boundary",
    ],
)
async def test_malformed_bodies_are_invalid_requests(body: bytes, content_type: str, detail: str) -> None:
    error = await refusal(body, content_type)
    assert error.code == ErrorCode.invalid_request
    assert error.message.startswith("malformed multipart body: ") and detail in error.message


async def test_a_client_that_goes_away_is_not_a_bad_request() -> None:
    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", CONTENT_TYPE.encode())]}
    with pytest.raises(ClientDisconnect):
        await read_files(Request(scope, receive), name="file", max_files=3, max_fields=2)
