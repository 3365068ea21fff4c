"""The composed app under a real uvicorn server, in the test's event loop so that the test can add background
tasks beside the app's own (the dashboard sampler): the idle fast path must not depend on how many there are."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from ops.local_servers import free_port
from service.app import create_app
from service.core.settings import ModelSettings, Settings, TelemetrySettings
from tests.bursts import burst, post_request

BURST = 16
BODY = json.dumps({"instances": [{"pixels": [[0] * 28] * 28}], "preprocess": "none"})


async def _idle_work() -> None:
    while True:  # a long-lived task that wakes now and then, like a repository watcher or a telemetry exporter
        await asyncio.sleep(0.05)


@pytest.fixture
async def server(artifact: Path) -> AsyncIterator[str]:
    port = free_port()
    settings = Settings(
        model=ModelSettings(artifact=artifact), telemetry=TelemetrySettings(dashboard_interval_seconds=0.2)
    )
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    uvicorn_server = uvicorn.Server(config)
    serving = asyncio.create_task(uvicorn_server.serve())
    background = [asyncio.create_task(_idle_work()) for _ in range(3)]
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(600):
            if uvicorn_server.started and (await client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.05)
    try:
        yield url
    finally:
        uvicorn_server.should_exit = True
        await serving
        for task in background:
            task.cancel()


async def _counts(url: str) -> tuple[float, float]:
    """Model calls run inline, and model calls in all."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    samples = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    return samples["digits_inline_batches_total"], samples["digits_batch_size_count"]


async def test_an_idle_request_runs_inline_and_a_burst_is_batched(server: str) -> None:
    assert any(task.get_name() == "dashboard-metrics-history" for task in asyncio.all_tasks())
    async with httpx.AsyncClient(base_url=server) as client:
        for _ in range(3):
            answer = await client.post("/v1/predict", content=BODY, headers={"Content-Type": "application/json"})
            assert answer.status_code == 200
    inline, calls = await _counts(server)
    assert (inline, calls) == (3, 3)

    port = int(server.rsplit(":", 1)[1])
    assert await burst(port, [post_request("/v1/predict", BODY.encode())] * BURST) == [200] * BURST
    inline_after, calls_after = await _counts(server)
    assert calls_after - calls < BURST / 2, "a burst is batched, not run one request at a time"
    assert inline_after - inline <= 1
