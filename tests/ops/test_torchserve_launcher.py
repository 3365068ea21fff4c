"""A real TorchServe started by the launcher: the gateway's tensor wire, direct JSON clients, TorchServe-side
batching (the benchmark's direct config), its /metrics."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families

from bench.torchserve_targets import DIRECT_MODEL_CONFIG
from model.card import ModelCard, load_card
from model.mnist import Split
from ops.torchserve.archive import build_archive
from ops.torchserve.launcher import TorchServe, TorchServeConfig
from service.backends.torchserve.wire import decode_response, encode_request
from service.core.schemas import PredictResponse

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def mar(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """With TorchServe-side batching, so that concurrent direct requests share batches."""
    return build_archive(artifact, tmp_path_factory.mktemp("model-store"), model_config=DIRECT_MODEL_CONFIG)


@pytest.fixture(scope="module")
def torchserve(mar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServe]:
    config = TorchServeConfig.on_free_ports(mar, tmp_path_factory.mktemp("torchserve-logs"), workers=2)
    with TorchServe(config) as server:
        yield server


@pytest.fixture(scope="module")
def digits(labelled_digits: Split) -> Split:
    return labelled_digits


@pytest.fixture(scope="module")
def card(artifact: Path) -> ModelCard:
    return load_card(artifact)


@pytest.fixture(scope="module")
def local_probabilities(artifact: Path, card: ModelCard, digits: Split) -> np.ndarray:
    """The artifact run right here, outside TorchServe."""
    batch = card.input.normalize(digits.images)[:, None]
    module = torch.jit.load(str(artifact), map_location="cpu").eval()
    with torch.inference_mode():
        return torch.softmax(module(torch.from_numpy(batch)), dim=1).numpy()


def post_raw(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    status, answer = post_raw(url, json.dumps(body).encode(), JSON)
    return status, json.loads(answer)


def pixels(images: np.ndarray, **options: Any) -> dict[str, Any]:
    return {"instances": [{"pixels": image.tolist()} for image in images], "preprocess": "none", **options}


def probabilities_of(body: dict[str, Any]) -> np.ndarray:
    PredictResponse.model_validate(body)  # the gateway's response schema
    return np.asarray([p["probabilities"] for p in body["predictions"]], dtype=np.float32)


def test_json_and_tensor_bodies_give_the_local_models_answer(
    torchserve: TorchServe, digits: Split, card: ModelCard, local_probabilities: np.ndarray
) -> None:
    images = digits.images[:4]
    status, answer = post(torchserve.predict_url, pixels(images))
    assert status == 200, answer
    assert answer["model"] == {"name": card.name, "version": card.version}
    np.testing.assert_allclose(probabilities_of(answer), local_probabilities[:4], atol=1e-5)
    assert [p["label"] for p in answer["predictions"]] == list(np.argmax(local_probabilities[:4], axis=1))
    body, headers = encode_request(card.input.normalize(images)[:, None], frozenset())
    status, tensors = post_raw(torchserve.predict_url, body, headers)
    assert status == 200, tensors
    output = decode_response(tensors, 4, frozenset())
    assert output.features == {}
    np.testing.assert_allclose(output.probabilities, local_probabilities[:4], atol=1e-5)


def test_the_tensor_answer_carries_only_the_layers_asked_for_at_their_float32_size(
    torchserve: TorchServe, digits: Split, card: ModelCard
) -> None:
    shapes = {layer.name: layer.output_shape for layer in card.layers if layer.feature_map}
    for n in (1, 8):
        batch = card.input.normalize(digits.images[:n])[:, None]
        for name, shape in shapes.items():
            body, headers = encode_request(batch, frozenset({name}))
            status, tensors = post_raw(torchserve.predict_url, body, headers)
            assert status == 200, tensors
            output = decode_response(tensors, n, frozenset({name}))
            assert list(output.features) == [name] and output.features[name].shape == (n, *shape)
            float32_bytes = 4 * int(np.prod(shape))
            payload = n * (float32_bytes + 4 * len(card.labels))
            assert len(tensors) <= payload + 128, (name, n, len(tensors), payload)  # one line naming the shapes
            assert len(tensors) / n <= 1.1 * float32_bytes, (name, n, len(tensors), float32_bytes)


def test_direct_feature_maps_come_in_the_gateways_formats(
    torchserve: TorchServe, digits: Split, card: ModelCard
) -> None:
    shapes = {layer.name: layer.output_shape for layer in card.layers if layer.feature_map}
    for fmt in ("array", "png"):
        status, answer = post(torchserve.predict_url, pixels(digits.images[:2], features=["all"], feature_format=fmt,
                                                             top_k=2))  # fmt: skip
        assert status == 200, answer
        PredictResponse.model_validate(answer)
        for prediction in answer["predictions"]:
            assert len(prediction["top_k"]) == 2
            assert list(prediction["features"]) == card.feature_layers
            for name, encoded in prediction["features"].items():
                assert encoded["format"] == fmt and encoded["shape"] == shapes[name]
                assert ("grid" in encoded) == (fmt == "png")


def test_concurrent_requests_batched_by_torchserve_each_get_their_own_answer(
    torchserve: TorchServe, digits: Split, local_probabilities: np.ndarray
) -> None:
    def one(i: int) -> tuple[int, dict[str, Any]]:
        if i % 4 == 3:  # a bad request among good ones in the same TorchServe batch
            return post(torchserve.predict_url, {"instances": [{"pixels": [[0] * 27] * 28}]})
        return post(torchserve.predict_url, pixels(digits.images[i : i + 1]))

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(len(digits.images))))
    for i, (status, answer) in enumerate(answers):
        if i % 4 == 3:
            assert status == 422 and answer["error"]["code"] == "wrong_image_size"
        else:
            assert status == 200, answer
            np.testing.assert_allclose(probabilities_of(answer)[0], local_probabilities[i], atol=1e-5)


def test_bad_direct_requests_get_the_gateways_error_codes(torchserve: TorchServe, card: ModelCard) -> None:
    blank = [[0] * 28] * 28
    tensor, headers = encode_request(np.zeros((1, 1, 28, 28), np.float32), frozenset({"conv9"}))
    cases = [
        (b"{", JSON, 400, "invalid_json"),
        (b'{"instances": [{"pixels": [[1, 2]]}]}', JSON, 422, "wrong_image_size"),
        (json.dumps({"instances": [{"pixels": blank}], "top_k": 0}).encode(), JSON, 422, "invalid_top_k"),
        (json.dumps({"instances": [{"pixels": blank}] * 129}).encode(), JSON, 413, "too_many_images"),
        (json.dumps({"instances": [{"image": "iVBORw0KGgo="}]}).encode(), JSON, 422, "invalid_request"),
        (tensor, headers, 422, "unknown_feature_layer"),
    ]
    for body, sent_headers, status, code in cases:
        got_status, answer = post_raw(torchserve.predict_url, body, sent_headers)
        assert (got_status, json.loads(answer)["error"]["code"]) == (status, code)


def test_metrics_are_prometheus_text_with_the_inference_counters(torchserve: TorchServe, digits: Split) -> None:
    for _ in range(3):
        assert post(torchserve.predict_url, pixels(digits.images[:1]))[0] == 200
    with urllib.request.urlopen(f"{torchserve.metrics_url}/metrics", timeout=10) as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in ("ts_inference_requests", "ts_inference_latency_microseconds", "ts_queue_latency_microseconds"):
        assert name in families and families[name].type == "counter", sorted(families)
    served = [s for s in families["ts_inference_requests"].samples if s.labels["model_name"] == "digits"]
    assert served and served[0].value >= 3


def test_logs_go_to_the_log_dir(torchserve: TorchServe) -> None:
    written = {path.name for path in torchserve.config.log_dir.iterdir()}
    assert {"ts_log.log", "model_log.log", "access_log.log", "torchserve.out"} <= written


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"metrics_port": 1}, ValueError),  # same as the inference port below
        ({"workers": 0}, ValueError),
        ({"mar_path": Path("/nonexistent/digits.mar")}, FileNotFoundError),
    ],
)
def test_bad_configs_are_refused_at_construction(
    mar: Path, tmp_path: Path, change: dict[str, Any], error: type[Exception]
) -> None:
    fields: dict[str, Any] = {"mar_path": mar, "log_dir": tmp_path, "inference_port": 1, "management_port": 2}
    with pytest.raises(error):
        TorchServeConfig(**{**fields, **change})


def test_a_config_file_without_environment_overrides_is_refused(mar: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.properties"
    config.write_text("inference_address=http://127.0.0.1:8080\n")
    with pytest.raises(ValueError, match="enable_envvars_config"):
        TorchServeConfig(mar, tmp_path, config_file=config)
