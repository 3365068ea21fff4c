"""A real TorchServe for the backend tests (one per test module), and the gateway settings that point at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ops.torchserve.archive import build_archive
from ops.torchserve.launcher import TorchServe, TorchServeConfig


@pytest.fixture(scope="module")
def torchserve(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TorchServe]:
    mar = build_archive(artifact, tmp_path_factory.mktemp("model-store"))
    config = TorchServeConfig.on_free_ports(mar, tmp_path_factory.mktemp("torchserve-logs"), workers=2)
    with TorchServe(config) as server:
        yield server


def torchserve_env(torchserve: TorchServe, **extra: str) -> dict[str, str]:
    return {
        "DIGITS_BACKEND": "torchserve",
        "DIGITS_TORCHSERVE_URL": torchserve.inference_url,
        "DIGITS_TORCHSERVE_MANAGEMENT_URL": torchserve.management_url,
        **extra,
    }
