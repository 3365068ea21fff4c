"""The gRPC server in its settings: two workers sharing the port (SO_REUSEPORT), API keys from the
``authorization`` metadata, and the calls in flight finished on SIGTERM."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from model.mnist import Split
from ops.local_servers import free_port
from service.core.api_keys import new_key
from tests.grpc.conftest import GrpcGateway
from tests.servers import gateway_process, uvicorn_workers

MODEL = "digits"


@pytest.fixture(scope="module")
def key_and_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GrpcGateway]]:
    directory = tmp_path_factory.mktemp("grpc-workers")
    key, line = new_key("tests")
    keys_file = Path(directory, "keys")
    keys_file.write_text(line + "\n")
    port = free_port()
    env = {"DIGITS_GRPC_PORT": str(port), "DIGITS_WORKERS": "2", "DIGITS_API_KEYS_FILE": str(keys_file)}
    with gateway_process(directory, env, ready_timeout=120) as server:
        yield key, GrpcGateway(server, f"127.0.0.1:{port}")


def test_two_workers_serve_grpc_on_one_port(key_and_gateway: tuple[str, GrpcGateway]) -> None:
    key, gateway = key_and_gateway
    assert len(uvicorn_workers(gateway.server.pid)) == 2
    headers = {"authorization": f"Bearer {key}"}
    pixels = np.zeros((1, 28, 28), np.float32)
    # A new connection each time: the kernel spreads them over both workers' sockets.
    for _ in range(8):
        with triton_grpc.InferenceServerClient(url=gateway.grpc_address) as client:
            assert client.is_model_ready(MODEL, headers=headers)
            tensor = triton_grpc.InferInput("pixels", [1, 28, 28], "FP32")
            tensor.set_data_from_numpy(pixels)
            assert client.infer(MODEL, [tensor], headers=headers).as_numpy("label").shape == (1,)


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-key", "Basic abc"], ids=["none", "unknown", "scheme"])
def test_a_call_without_a_known_key_is_unauthenticated(
    key_and_gateway: tuple[str, GrpcGateway], authorization: str | None
) -> None:
    _, gateway = key_and_gateway
    headers = {"authorization": authorization} if authorization else None
    with (
        triton_grpc.InferenceServerClient(url=gateway.grpc_address) as client,
        pytest.raises(InferenceServerException) as refused,
    ):
        client.is_server_live(headers=headers)
    assert refused.value.status() == "StatusCode.UNAUTHENTICATED"
    assert refused.value.message().startswith("unauthorized: ")


def test_sigterm_finishes_the_calls_in_flight(tmp_path: Path, labelled_digits: Split) -> None:
    port = free_port()
    # Calls wait up to 3 s for their batch to fill: SIGTERM comes while they wait.
    env = {"DIGITS_GRPC_PORT": str(port), "DIGITS_MAX_BATCH_WAIT_MS": "3000", "DIGITS_MAX_QUEUE_WAIT_MS": "20000"}
    calls = 4
    with gateway_process(tmp_path, env) as server:
        clients = [triton_grpc.InferenceServerClient(url=f"127.0.0.1:{port}") for _ in range(calls)]
        assert all(client.is_server_ready() for client in clients)
        with ThreadPoolExecutor(max_workers=calls) as pool:
            futures = [pool.submit(_label, client, labelled_digits.images[i]) for i, client in enumerate(clients)]
            _wait_for_calls_in_flight(server.url, calls)
            server.process.send_signal(signal.SIGTERM)
            labels = [future.result() for future in futures]
        # uvicorn re-raises the signal after its graceful shutdown: exit by SIGTERM is the clean end
        assert server.process.wait(60) in (0, -signal.SIGTERM)
    assert labels == labelled_digits.labels[:calls].tolist()


def _label(client: triton_grpc.InferenceServerClient, image: np.ndarray) -> int:
    tensor = triton_grpc.InferInput("pixels", [1, 28, 28], "UINT8")
    tensor.set_data_from_numpy(image.reshape(1, 28, 28).astype(np.uint8))
    return int(client.infer(MODEL, [tensor]).as_numpy("label")[0])


def _wait_for_calls_in_flight(url: str, count: int) -> None:
    while True:
        text = httpx.get(f"{url}/metrics", timeout=10).raise_for_status().text
        in_flight = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "digits_inflight_requests"
        )
        if in_flight >= count + 1:  # the calls, and this scrape
            return
        time.sleep(0.05)
