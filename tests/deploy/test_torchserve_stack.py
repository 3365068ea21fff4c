"""The default stack, gateway -> TorchServe, on CPU: docker-compose.yml with deploy/compose/torchserve-cpu.yml
in place of the GPU reservation. Its predictions equal the embedded backend's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ops.local_servers import ServerProcess
from tests.deploy.samples import predict_png, samples
from tests.deploy.stack import COMPOSE_FILE, TORCHSERVE_ON_CPU, ComposeStack
from tests.servers import gateway_process

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    stack = ComposeStack("digits-test-torchserve", [COMPOSE_FILE, TORCHSERVE_ON_CPU], settings={"DIGITS_WORKERS": "1"})
    try:
        stack.up("gateway", "torchserve", "loadbalancer")
        stack.wait_healthy("torchserve", timeout=300)
        stack.wait_healthy("gateway")
        stack.wait_balanced(1)
        yield stack
    finally:
        stack.down()


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with gateway_process(Path(tmp_path_factory.mktemp("embedded")), {"DIGITS_DEVICE": "cpu"}) as server:
        yield server


def test_torchserve_in_its_container_predicts_what_the_embedded_backend_does(
    stack: ComposeStack, embedded: ServerProcess
) -> None:
    for sample in samples()[:6]:
        through_torchserve = predict_png(stack.url, sample)["predictions"][0]  # type: ignore[index]
        in_process = predict_png(embedded.url, sample)["predictions"][0]  # type: ignore[index]
        assert through_torchserve["label"] == in_process["label"] == sample.label
        np.testing.assert_allclose(through_torchserve["probabilities"], in_process["probabilities"], atol=1e-5)
