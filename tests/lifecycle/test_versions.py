"""Several versions on a real two-worker gateway: each answers on its own routes, bad versions are refused with
their codes while stable serves on, tritonclient drives the repository, and only admin keys may."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from model.card import load_card
from model.mnist import Split
from ops.local_servers import ServerProcess
from tests.lifecycle.helpers import (
    OTHER,
    SHIPPED,
    STABLE,
    Keys,
    Load,
    bearer,
    make_keys,
    make_repository,
    pixel_bodies,
    repository_gateway,
    wait_for,
)
from tests.versions import corrupt_version, swapped_labels_version, wrong_hash_version

# Real two-worker gateways under load, several minutes in all: the slow tier.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys_and_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keys, Path]:
    return make_keys(tmp_path_factory.mktemp("keys") / "api-keys")


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repository(tmp_path_factory.mktemp("repository"))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, repository: Path, keys_and_file: tuple[Keys, Path]
) -> Iterator[ServerProcess]:
    with repository_gateway(tmp_path_factory.mktemp("server"), repository, keys_and_file[1]) as process:
        yield process


@pytest.fixture(scope="module")
def keys(keys_and_file: tuple[Keys, Path]) -> Keys:
    return keys_and_file[0]


def admin_post(server: ServerProcess, keys: Keys, path: str, **params: str) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", params=params, headers=bearer(keys.admin), timeout=120)


def every_worker_has(server: ServerProcess, keys: Keys, version: str) -> bool:
    """A new connection each time lands on either worker: 12 ready answers in a row mean both have it."""
    path = f"/v2/models/digits/versions/{version}/ready"
    return all(httpx.get(server.url + path, headers=bearer(keys.client)).status_code == 200 for _ in range(12))


def reference_probabilities(artifact: Path, images: np.ndarray) -> np.ndarray:
    module = torch.jit.load(str(artifact)).eval()
    batch = load_card(artifact).input.normalize(images.astype(np.float32)).reshape(-1, 1, 28, 28)
    with torch.inference_mode():
        logits = module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
    return torch.softmax(logits, dim=1).numpy()


def test_each_loaded_version_answers_on_its_routes(server: ServerProcess, keys: Keys, labelled_digits: Split) -> None:
    assert admin_post(server, keys, "/v2/repository/models/digits/load", version=OTHER).status_code == 200
    wait_for(lambda: every_worker_has(server, keys, OTHER), what=f"both workers to load {OTHER}")
    images = labelled_digits.images[:4]
    pixels = {"instances": [{"pixels": image.tolist()} for image in images], "preprocess": "none"}
    for version in (STABLE, OTHER):
        expected = reference_probabilities(SHIPPED / version / "digits.pt", images)
        v1 = httpx.post(f"{server.url}/v1/predict", params={"version": version}, json=pixels,
                        headers=bearer(keys.client)).json()  # fmt: skip
        assert v1["model"]["version"] == version
        got = np.array([item["probabilities"] for item in v1["predictions"]], dtype=np.float32)
        np.testing.assert_allclose(got, expected, atol=1e-5)
        tensor = {"name": "pixels", "datatype": "UINT8", "shape": [4, 28, 28], "data": images.ravel().tolist()}
        v2 = httpx.post(f"{server.url}/v2/models/digits/versions/{version}/infer",
                        json={"inputs": [tensor], "outputs": [{"name": "probabilities"}]},
                        headers=bearer(keys.client)).json()  # fmt: skip
        assert v2["model_version"] == version
        np.testing.assert_allclose(np.array(v2["outputs"][0]["data"]).reshape(4, 10), expected, atol=1e-5)
        layers = httpx.get(f"{server.url}/v1/models/digits/layers/conv1", params={"version": version},
                           headers=bearer(keys.client))  # fmt: skip
        assert layers.status_code == 200
    unversioned = httpx.post(f"{server.url}/v1/predict", json=pixels, headers=bearer(keys.client)).json()
    assert unversioned["model"]["version"] == STABLE
    missing = httpx.post(f"{server.url}/v1/predict", params={"version": "9.9.9"}, json=pixels,
                         headers=bearer(keys.client))  # fmt: skip
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_model"


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (corrupt_version, "corrupt_artifact"),
        (wrong_hash_version, "hash_mismatch"),
        (swapped_labels_version, "failed_probe"),
    ],
)
def test_a_bad_version_is_refused_while_stable_serves_on(
    server: ServerProcess, keys: Keys, repository: Path, labelled_digits: Split, make: object, code: str
) -> None:
    version = {"corrupt_artifact": "3.0.0", "hash_mismatch": "3.0.1", "failed_probe": "3.0.2"}[code]
    make(SHIPPED / STABLE / "digits.pt", repository, version)  # type: ignore[operator]
    with Load(server.url, pixel_bodies(labelled_digits.images), headers=bearer(keys.client)) as load:
        refused = admin_post(server, keys, "/v2/repository/models/digits/load", version=version)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == code, refused.json()
    assert load.answers and not load.failures(), load.failures()[:3]
    assert {answer.version for answer in load.answers} <= {STABLE}
    index = admin_post(server, keys, "/v2/repository/index").json()
    entry = next(e for e in index if e["version"] == version)
    assert entry["state"] == "UNAVAILABLE" and entry["reason"].startswith(code)
    metrics = httpx.get(f"{server.url}/metrics").text
    assert f'digits_model_version_refusals_total{{code="{code}"}}' in metrics


def test_tritonclient_indexes_loads_and_unloads_versions(server: ServerProcess, keys: Keys) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    headers = bearer(keys.admin)
    client.load_model("digits", headers=headers, query_params={"version": OTHER})
    index = {entry["version"]: entry["state"] for entry in client.get_model_repository_index(headers=headers)}
    assert index[OTHER] == "READY" and index[STABLE] == "READY"
    client.unload_model("digits", headers=headers, query_params={"version": OTHER})
    wait_for(lambda: all(
        httpx.get(f"{server.url}/v2/models/digits/versions/{OTHER}/ready", headers=bearer(keys.client)).status_code
        == 404 for _ in range(12)), what=f"both workers to unload {OTHER}")  # fmt: skip
    index = {entry["version"]: entry["state"] for entry in client.get_model_repository_index(headers=headers)}
    assert index[OTHER] == "UNAVAILABLE"
    with pytest.raises(InferenceServerException, match="version_in_use"):
        client.unload_model("digits", headers=headers, query_params={"version": STABLE})
    client.load_model("digits", headers=headers, query_params={"version": OTHER})


def test_only_an_admin_key_manages_the_repository(server: ServerProcess, keys: Keys, gateway: ServerProcess) -> None:
    path = "/v2/repository/index"
    assert httpx.post(server.url + path).status_code == 401
    as_client = httpx.post(server.url + path, headers=bearer(keys.client))
    assert as_client.status_code == 403 and as_client.json()["code"] == "forbidden"
    assert httpx.get(f"{server.url}/v1/rollout", headers=bearer(keys.client)).status_code == 403
    assert httpx.post(server.url + path, headers=bearer(keys.admin)).status_code == 200
    without_key_file = httpx.post(gateway.url + path)  # a gateway with no key file: nobody is an admin
    assert without_key_file.status_code == 403 and "role=admin" in without_key_file.json()["error"]
