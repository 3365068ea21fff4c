"""The gRPC server in its settings: two workers sharing the port (SO_REUSEPORT), API keys from the
``authorization`` metadata."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.utils import InferenceServerException

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
