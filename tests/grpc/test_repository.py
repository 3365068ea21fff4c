"""Triton's model repository calls over gRPC, on a real gateway serving a copy of the shipped repository: tritonclient's
index, load and unload, inference on the version loaded, a corrupt version refused with its code, admin keys only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from ops.local_servers import free_port
from service.core.api_keys import ADMIN_KEY_NEEDED
from tests.grpc.conftest import GrpcGateway
from tests.lifecycle.helpers import (
    OTHER,
    SHIPPED,
    STABLE,
    Keys,
    make_keys,
    make_repository,
    repository_gateway,
    wait_for,
)
from tests.versions import corrupt_version

MODEL = "digits"
CORRUPT = "3.0.0"


@pytest.fixture(scope="module")
def keys_and_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keys, Path]:
    return make_keys(tmp_path_factory.mktemp("keys") / "api-keys")


@pytest.fixture(scope="module")
def keys(keys_and_file: tuple[Keys, Path]) -> Keys:
    return keys_and_file[0]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repository(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="module")
def address(
    tmp_path_factory: pytest.TempPathFactory, repository: Path, keys_and_file: tuple[Keys, Path]
) -> Iterator[str]:
    port = free_port()
    tmp = tmp_path_factory.mktemp("server")
    with repository_gateway(tmp, repository, keys_and_file[1], DIGITS_GRPC_PORT=str(port)):
        yield f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(address: str) -> Iterator[triton_grpc.InferenceServerClient]:
    client = triton_grpc.InferenceServerClient(url=address)
    yield client
    client.close()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def states(client: triton_grpc.InferenceServerClient, keys: Keys) -> dict[str, str]:
    index = client.get_model_repository_index(headers=bearer(keys.admin))
    return {model.version: model.state for model in index.models if model.name == MODEL}


@contextlib.contextmanager
def triton_stub(address: str) -> Iterator[service_pb2_grpc.GRPCInferenceServiceStub]:
    """Triton's own generated stub (shipped in tritonclient), for what its client's methods cannot send."""
    with grpc.insecure_channel(address) as channel:
        yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def unload(address: str, key: str, version: str) -> None:
    """tritonclient's ``unload_model`` sends no version: the stub, with the string parameter ``version``."""
    request = service_pb2.RepositoryModelUnloadRequest(model_name=MODEL)
    request.parameters["version"].string_param = version
    with triton_stub(address) as stub:
        stub.RepositoryModelUnload(request, metadata=tuple(bearer(key).items()))


def test_the_index_lists_the_repositorys_versions(
    client: triton_grpc.InferenceServerClient, keys: Keys, address: str
) -> None:
    assert states(client, keys) == {OTHER: "UNAVAILABLE", STABLE: "READY"}
    with triton_stub(address) as stub:
        ready = stub.RepositoryIndex(
            service_pb2.RepositoryIndexRequest(ready=True), metadata=tuple(bearer(keys.admin).items())
        )
    assert [(model.version, model.state) for model in ready.models] == [(STABLE, "READY")]


def test_a_version_loads_answers_by_its_version_and_unloads(
    client: triton_grpc.InferenceServerClient, keys: Keys, address: str
) -> None:
    client.load_model(MODEL, headers=bearer(keys.admin), config=f'{{"version": "{OTHER}"}}')
    assert states(client, keys)[OTHER] == "READY"
    pixels = triton_grpc.InferInput("pixels", [1, 28, 28], "FP32")
    pixels.set_data_from_numpy(np.zeros((1, 28, 28), dtype=np.float32))
    result = client.infer(MODEL, [pixels], model_version=OTHER, headers=bearer(keys.client))
    assert result.get_response().model_version == OTHER
    assert result.as_numpy("probabilities").shape == (1, 10)

    unload(address, keys.admin, OTHER)
    wait_for(lambda: states(client, keys)[OTHER] != "READY", what=f"{OTHER} to unload")
    with pytest.raises(grpc.RpcError) as stable:
        unload(address, keys.admin, STABLE)
    assert stable.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "version_in_use" in str(stable.value.details())


def test_a_corrupt_version_is_refused_with_its_code(
    client: triton_grpc.InferenceServerClient, keys: Keys, repository: Path
) -> None:
    corrupt_version(SHIPPED / STABLE / "digits.pt", repository, CORRUPT)
    with pytest.raises(InferenceServerException) as refused:
        client.load_model(MODEL, headers=bearer(keys.admin), config=f'{{"version": "{CORRUPT}"}}')
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert str(refused.value.message()).startswith("corrupt_artifact: ")
    index = client.get_model_repository_index(headers=bearer(keys.admin))
    (entry,) = [model for model in index.models if model.version == CORRUPT]
    assert entry.state == "UNAVAILABLE" and entry.reason.startswith("corrupt_artifact")
    assert client.is_server_ready(headers=bearer(keys.client))


@pytest.mark.parametrize(
    "config",
    ["not json", '{"version": "2.0.0", "max_batch_size": 8}', '{"version": 2}'],
)
def test_a_load_config_other_than_a_version_is_refused(
    client: triton_grpc.InferenceServerClient, keys: Keys, config: str
) -> None:
    with pytest.raises(InferenceServerException) as refused:
        client.load_model(MODEL, headers=bearer(keys.admin), config=config)
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert str(refused.value.message()).startswith("invalid_request: ")


def test_only_an_admin_key_manages_the_repository(
    client: triton_grpc.InferenceServerClient, keys: Keys, grpc_gateway: GrpcGateway
) -> None:
    calls = {
        "index": lambda headers: client.get_model_repository_index(headers=headers),
        "load": lambda headers: client.load_model(MODEL, headers=headers, config=f'{{"version": "{OTHER}"}}'),
        "unload": lambda headers: client.unload_model(MODEL, headers=headers),
    }
    for call in calls.values():
        with pytest.raises(InferenceServerException) as predict_key:
            call(bearer(keys.client))
        assert predict_key.value.status() == "StatusCode.PERMISSION_DENIED"
        assert "role=admin" in str(predict_key.value.message())
        with pytest.raises(InferenceServerException) as no_key:
            call({})
        assert no_key.value.status() == "StatusCode.UNAUTHENTICATED"
    without_key_file = triton_grpc.InferenceServerClient(url=grpc_gateway.grpc_address)
    try:
        with pytest.raises(InferenceServerException) as nobody:
            without_key_file.get_model_repository_index()
    finally:
        without_key_file.close()
    assert nobody.value.status() == "StatusCode.PERMISSION_DENIED"
    assert nobody.value.message() == f"forbidden: {ADMIN_KEY_NEEDED}"
