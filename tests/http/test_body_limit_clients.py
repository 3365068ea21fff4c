"""A 413 every client reads: curl, urllib, requests and aiohttp, against a real gateway process.

A body over the limit is either declared (Content-Length, refused before any of it is read) or found
while it streams (chunked). Either way the server answers 413 and drains the rest before closing, so a
client that writes its whole body before reading gets the answer instead of a connection reset."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import requests

from ops.local_servers import ServerProcess
from tests.servers import gateway_process

LIMIT = 64 * 1024
TOO_LARGE = 2 * 1024 * 1024  # 32 times the limit: far more than the socket buffers hold
CHUNK = 16 * 1024


@pytest.fixture(scope="module")
def limited_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with gateway_process(tmp_path_factory.mktemp("limited"), {"DIGITS_MAX_BODY_BYTES": str(LIMIT)}) as server:
        yield server


def json_body(size: int) -> bytes:
    return b'{"instances": [{"image": "' + b"A" * (size - 30) + b'"}]}'


def chunks(size: int) -> Iterator[bytes]:
    body = json_body(size)
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def assert_body_too_large(status: int, body: bytes) -> None:
    assert status == 413
    assert json.loads(body)["error"]["code"] == "body_too_large"


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_urllib_reads_the_413(limited_gateway: ServerProcess, streamed: bool) -> None:
    data = chunks(TOO_LARGE) if streamed else json_body(TOO_LARGE)
    request = urllib.request.Request(
        f"{limited_gateway.url}/v1/predict", data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=30)
    assert_body_too_large(answer.value.code, answer.value.read())


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_requests_reads_the_413(limited_gateway: ServerProcess, streamed: bool) -> None:
    data = chunks(TOO_LARGE) if streamed else json_body(TOO_LARGE)
    response = requests.post(
        f"{limited_gateway.url}/v1/predict", data=data, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert_body_too_large(response.status_code, response.content)


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_aiohttp_reads_the_413(limited_gateway: ServerProcess, streamed: bool) -> None:
    async def post() -> tuple[int, bytes]:
        async def stream() -> object:
            for chunk in chunks(TOO_LARGE):
                yield chunk

        data = stream() if streamed else json_body(TOO_LARGE)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{limited_gateway.url}/v1/predict",
                data=data,
                headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response,
        ):
            return response.status, await response.read()

    assert_body_too_large(*asyncio.run(post()))


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_curl_reads_the_413(limited_gateway: ServerProcess, streamed: bool, tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(json_body(TOO_LARGE))
    extra = ["-H", "Transfer-Encoding: chunked"] if streamed else []
    result = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", *extra,
         "--data-binary", f"@{body}", f"{limited_gateway.url}/v1/predict"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    answer, _, status = result.stdout.rpartition(b"\n")
    assert_body_too_large(int(status), answer)


def test_a_body_within_the_limit_still_works_on_the_same_connection(limited_gateway: ServerProcess) -> None:
    with requests.Session() as session:
        too_large = session.post(f"{limited_gateway.url}/v1/predict", data=json_body(TOO_LARGE), timeout=30,
                                 headers={"Content-Type": "application/json"})  # fmt: skip
        assert too_large.status_code == 413
        pixels = [[0] * 28 for _ in range(28)]
        pixels[10][14] = 255
        fine = session.post(f"{limited_gateway.url}/v1/predict", timeout=30,
                            json={"instances": [{"pixels": pixels}], "preprocess": "none"})  # fmt: skip
        assert fine.status_code == 200
