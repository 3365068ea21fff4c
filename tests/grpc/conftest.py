"""A real ``digits serve`` process with gRPC on, and Triton's gRPC clients for it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import tritonclient.grpc as triton_grpc

from ops.local_servers import ServerProcess, free_port
from tests.servers import gateway_process


@dataclass(frozen=True)
class GrpcGateway:
    server: ServerProcess
    grpc_address: str  # host:port, as tritonclient.grpc takes it

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def grpc_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcGateway]:
    port = free_port()
    with gateway_process(tmp_path_factory.mktemp("grpc-gateway"), {"DIGITS_GRPC_PORT": str(port)}) as server:
        yield GrpcGateway(server, f"127.0.0.1:{port}")


@pytest.fixture(scope="module")
def triton(grpc_gateway: GrpcGateway) -> Iterator[triton_grpc.InferenceServerClient]:
    client = triton_grpc.InferenceServerClient(url=grpc_gateway.grpc_address)
    yield client
    client.close()
