"""The image files of a multipart/form-data body, read with python-multipart's parser straight into memory.

Starlette's ``request.form()`` spools every file into a temporary file behind an ``UploadFile`` and builds a
``FormData``; the body is already capped by the body size limit, so plain bytes are as safe and cheaper.
The limits and messages are Starlette's: a part with a filename is a file, one without is a field.
"""

from __future__ import annotations

import codecs
from contextlib import aclosing
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from service.core.errors import ApiError, ErrorCode

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# The most bytes a part that is not a file may hold, as in Starlette.
MAX_FIELD_BYTES = 1024 * 1024


class _Parts:
    """python-multipart's callbacks: count files and fields, keep the data of the files named ``name``."""

    def __init__(self, name: str, charset: str, max_files: int, max_fields: int) -> None:
        self.name = name
        self.charset = charset
        self.max_files = max_files
        self.max_fields = max_fields
        self.files: list[bytes] = []
        self._file_count = 0
        self._field_count = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._is_file = False
        self._field_bytes = 0
        self._kept: list[bytes] | None = None  # the current part's data, when it is one of the files wanted

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self._disposition = b""
        self._is_file = False
        self._field_bytes = 0
        self._kept = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _malformed('The Content-Disposition header field "name" must be provided.')
        self._is_file = b"filename" in options
        if self._is_file:
            self._file_count += 1
            if self._file_count > self.max_files:
                raise ApiError(ErrorCode.too_many_images, f"too many files; the limit is {self.max_files}")
            if _decode(options[b"name"], self.charset) == self.name:
                self._kept = []
        else:
            self._field_count += 1
            if self._field_count > self.max_fields:
                raise _malformed(f"Too many fields. Maximum number of fields is {self.max_fields}.")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._kept is not None:
            self._kept.append(data[start:end])
        elif not self._is_file:
            self._field_bytes += end - start
            if self._field_bytes > MAX_FIELD_BYTES:
                raise _malformed(f"Part exceeded maximum size of {MAX_FIELD_BYTES // 1024}KB.")

    def on_part_end(self) -> None:
        if self._kept is not None:
            self.files.append(b"".join(self._kept))  # one chunk (the usual case): that very bytes object, no copy
            self._kept = None


def _decode(value: bytes, charset: str) -> str:
    try:
        return value.decode(charset)
    except UnicodeDecodeError:
        return value.decode("latin-1")


def _charset(params: dict[bytes, bytes]) -> str:
    """The body's charset for part names, as Starlette reads it: UTF-8 unless the content type names another."""
    try:
        return codecs.lookup(params.get(b"charset", b"utf-8").decode("latin-1")).name
    except LookupError:
        return "latin-1"


def _malformed(detail: str) -> ApiError:
    return ApiError(ErrorCode.invalid_request, f"malformed multipart body: {detail}")


async def read_files(request: Request, *, name: str, max_files: int, max_fields: int) -> list[bytes]:
    """The data of every file part named ``name``, in order; refused past ``max_files`` files (parts with a
    filename, whatever their name) or ``max_fields`` other parts, or when the body is not valid multipart."""
    _, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if boundary is None:
        raise _malformed("Missing boundary in multipart.")
    parts = _Parts(name, _charset(params), max_files, max_fields)
    try:
        parser = MultipartParser(boundary, parts.callbacks())
        async with aclosing(request.stream()) as stream:
            async for chunk in stream:
                if chunk:  # the stream ends with an empty chunk
                    parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise _malformed("Invalid multipart data.") from exc
    return parts.files
