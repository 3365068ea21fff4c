"""API keys, security headers and CORS on a real gateway process."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ops.local_servers import ServerProcess, wait_until_ready
from service.core.api_keys import key_hash, new_key
from service.core.schemas import EXAMPLE_PIXELS
from tests.servers import gateway_process

ORIGIN = "https://app.example"
PIXELS = {"instances": [{"pixels": EXAMPLE_PIXELS}], "preprocess": "none"}  # a "1"


class Keys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.alice, alice_line = new_key("alice")
        self.bob, self.bob_line = new_key("bob")
        path.write_text(f"# digits API keys\n{alice_line}\n")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys") / "api-keys")


@pytest.fixture(scope="module")
def secured(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"DIGITS_API_KEYS_FILE": str(keys.path), "DIGITS_CORS_ORIGINS": json.dumps([ORIGIN])}
    with gateway_process(tmp_path_factory.mktemp("secured"), env) as server:
        yield server


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_api_needs_a_key(secured: ServerProcess, keys: Keys) -> None:
    for headers in ({}, bearer("not-a-key"), {"Authorization": keys.alice}, {"Authorization": f"Basic {keys.alice}"}):
        for method, path in (("POST", "/v1/predict"), ("GET", "/v1/models/digits"), ("GET", "/v2/models/digits")):
            response = httpx.request(method, f"{secured.url}{path}", json=PIXELS, headers=headers, timeout=30)
            assert response.status_code == 401, (method, path, headers.keys())
            body = response.json()  # /v2 answers in the Open Inference Protocol's error shape
            assert (body["code"] if path.startswith("/v2") else body["error"]["code"]) == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    answer = httpx.post(f"{secured.url}/v1/predict", json=PIXELS, headers=bearer(keys.alice), timeout=30)
    assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] == 1
    assert httpx.get(f"{secured.url}/v1/models/digits", headers=bearer(keys.alice)).status_code == 200


def test_operations_pages_and_docs_stay_open(secured: ServerProcess) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/", "/dashboard", "/static/api.js", "/openapi.json", "/docs"):
        assert httpx.get(f"{secured.url}{path}").status_code == 200, path


def test_keys_are_reread_on_change_and_on_sighup(secured: ServerProcess, keys: Keys) -> None:
    url = f"{secured.url}/v1/models/digits"
    assert httpx.get(url, headers=bearer(keys.bob)).status_code == 401
    original = keys.path.read_text()
    keys.path.write_text(original + keys.bob_line + "\n")
    deadline = time.monotonic() + 10
    while httpx.get(url, headers=bearer(keys.bob)).status_code != 200:  # noticed within a second or two
        assert time.monotonic() < deadline, "the changed keys file was not re-read"
        time.sleep(0.2)
    # Same size and time stamp, so only SIGHUP can tell: alice's hash is replaced by another one.
    stat = keys.path.stat()
    keys.path.write_text(keys.path.read_text().replace(key_hash(keys.alice), key_hash("revoked")))
    assert keys.path.stat().st_size == stat.st_size
    os.utime(keys.path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    time.sleep(1.5)
    assert httpx.get(url, headers=bearer(keys.alice)).status_code == 200  # no change seen yet
    os.kill(secured.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while httpx.get(url, headers=bearer(keys.alice)).status_code != 401:
        assert time.monotonic() < deadline, "SIGHUP did not re-read the keys file"
        time.sleep(0.2)
    assert httpx.get(url, headers=bearer(keys.bob)).status_code == 200
    assert secured.process.poll() is None  # SIGHUP reloads, it does not stop the server
    keys.path.write_text(original)


def test_keys_never_reach_logs_or_metrics(secured: ServerProcess, keys: Keys) -> None:
    httpx.get(f"{secured.url}/v1/models/digits", headers=bearer(keys.alice))
    httpx.get(f"{secured.url}/v1/models/digits", headers=bearer(keys.alice[::-1]))
    metrics = httpx.get(f"{secured.url}/metrics").text
    assert 'digits_errors_total{code="unauthorized"}' in metrics
    for secret in (keys.alice, keys.bob, keys.alice[::-1]):
        assert secret not in metrics and secret not in secured.log()
    assert "alice" in secured.log()  # the name may be logged


def test_metrics_and_health_need_a_key_when_asked(keys: Keys, tmp_path: Path) -> None:
    env = {"DIGITS_API_KEYS_FILE": str(keys.path), "DIGITS_AUTH_METRICS": "true"}
    with gateway_process(tmp_path, env, wait_ready=False) as server:
        wait_until_ready(f"{server.url}/readyz", 60, headers=bearer(keys.alice))
        for path in ("/healthz", "/readyz", "/metrics"):
            assert httpx.get(f"{server.url}{path}").status_code == 401, path
            assert httpx.get(f"{server.url}{path}", headers=bearer(keys.alice)).status_code == 200, path


def test_security_headers_on_pages_and_api(secured: ServerProcess, keys: Keys) -> None:
    answers = [
        httpx.get(f"{secured.url}/"),
        httpx.get(f"{secured.url}/static/index.js"),
        httpx.get(f"{secured.url}/healthz"),
        httpx.get(f"{secured.url}/no-such-page"),
        httpx.post(f"{secured.url}/v1/predict", json=PIXELS, headers=bearer(keys.alice), timeout=30),
        httpx.post(f"{secured.url}/v1/predict", json=PIXELS),
    ]
    for answer in answers:
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, answer.url
        assert "http" not in policy.replace("'self'", "")  # nothing from elsewhere
        assert answer.headers["X-Content-Type-Options"] == "nosniff"


def test_the_pages_load_nothing_from_elsewhere() -> None:
    static = Path(__file__).resolve().parents[2] / "service" / "ui" / "static"
    for page in static.glob("*.html"):
        text = page.read_text()
        assert "<script>" not in text and "<style" not in text and " style=" not in text, page.name
        assert "http://" not in text and "https://" not in text and "//" not in text.replace("://", ""), page.name


def test_cors_only_for_the_listed_origins(secured: ServerProcess, gateway: ServerProcess, keys: Keys) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}  # fmt: skip
    allowed = httpx.options(f"{secured.url}/v1/predict", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    answer = httpx.get(f"{secured.url}/v1/models/digits", headers={"Origin": ORIGIN, **bearer(keys.alice)})
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    other = httpx.get(f"{secured.url}/v1/models/digits", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    default = httpx.get(f"{gateway.url}/v1/models/digits", headers={"Origin": ORIGIN})  # DIGITS_CORS_ORIGINS unset
    assert default.status_code == 200 and "Access-Control-Allow-Origin" not in default.headers
