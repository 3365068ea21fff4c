"""The OpenAPI document is valid and the gateway keeps it: openapi-spec-validator, then schemathesis with every
check over every route the document lists, against real gateway processes (with and without API keys)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate

from ops.local_servers import ServerProcess
from service.core.api_keys import new_key
from tests.servers import REPO, gateway_process

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.fixture(scope="module")
def keyed_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    key, line = new_key("schemathesis")
    keys_file = tmp_path_factory.mktemp("keys") / "api-keys"
    keys_file.write_text(line + "\n")
    with gateway_process(tmp_path_factory.mktemp("keyed"), {"DIGITS_API_KEYS_FILE": str(keys_file)}) as server:
        yield server, key


def test_the_document_is_valid_openapi(gateway: ServerProcess, keyed_gateway: tuple[ServerProcess, str]) -> None:
    for server in (gateway, keyed_gateway[0]):
        document = httpx.get(f"{server.url}/openapi.json").json()
        validate(document)  # every $ref resolves, and the document follows the OpenAPI 3.1 schema
        multipart = document["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
        assert multipart["schema"]["required"] == ["file"] and multipart["schema"]["properties"]["file"]["minItems"]
    keyed = httpx.get(f"{keyed_gateway[0].url}/openapi.json").json()
    assert keyed["paths"]["/v1/predict"]["post"]["security"] == [{"apiKey": []}]
    assert "security" not in keyed["paths"]["/healthz"]["get"]


def test_a_wrong_method_gets_405_with_allow(gateway: ServerProcess) -> None:
    for method, path, allowed in (("PUT", "/v1/predict", "POST"), ("DELETE", "/healthz", "GET")):
        answer = httpx.request(method, f"{gateway.url}{path}")
        assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"
        assert answer.headers["Allow"] == allowed


def run_schemathesis(url: str, tmp_path: Path, key: str | None = None) -> str:
    env = {**os.environ, "NO_COLOR": "1"}
    auth = ["--header", f"Authorization: Bearer {key}"] if key else []
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run", f"{url}/openapi.json",
               *auth, "--report", "junit", "--report-dir", str(tmp_path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=280, check=False)
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    return result.stdout


@pytest.mark.slow
def test_schemathesis_finds_no_failure(gateway: ServerProcess, tmp_path: Path) -> None:
    output = run_schemathesis(gateway.url, tmp_path)
    assert "No issues found" in output or " passed" in output


@pytest.mark.slow
def test_schemathesis_finds_no_failure_with_api_keys(keyed_gateway: tuple[ServerProcess, str], tmp_path: Path) -> None:
    server, key = keyed_gateway
    run_schemathesis(server.url, tmp_path, key)
    assert key not in server.log()
