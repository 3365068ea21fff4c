"""The in-process app the API tests drive (small limits), every 200 answer checked against its published schema:
PredictResponse for /v1/predict, InferenceResponse for the Open Inference Protocol's /infer."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from model.mnist import Split
from service.app import create_app
from service.core.oip.body import HEADER_LENGTH
from service.core.oip.schemas import InferenceResponse
from service.core.schemas import PredictResponse
from service.core.settings import BatchingSettings, LimitsSettings, Settings


def wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "gateway never became ready"
        time.sleep(0.05)


def validate_answer(response: httpx.Response) -> None:
    if response.status_code != 200:
        return
    path = response.request.url.path
    if path == "/v1/predict":
        response.read()
        PredictResponse.model_validate_json(response.content)
    elif path.startswith("/v2/") and path.endswith("/infer"):
        response.read()
        length = int(response.headers.get(HEADER_LENGTH, len(response.content)))
        InferenceResponse.model_validate_json(response.content[:length])


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings = Settings(
        limits=LimitsSettings(max_body_bytes=256 * 1024, max_images_per_request=8),
        batching=BatchingSettings(max_batch_size=16, max_queue_images=64),
    )
    with TestClient(create_app(settings)) as test_client:
        test_client.event_hooks = {"request": [], "response": [validate_answer]}
        wait_ready(test_client)
        yield test_client


@pytest.fixture(scope="module")
def digits(labelled_digits: Split) -> Split:
    return Split(labelled_digits.images[:8], labelled_digits.labels[:8])
