"""Shared fixtures: MNIST location, the shipped artifact, a real gateway process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.settings import DEFAULT_ARTIFACT
from tests.servers import ServerProcess, gateway_process


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The MNIST files (DIGITS_DATA_DIR); the Makefile points it at ../shared/data/mnist."""
    value = os.environ.get("DIGITS_DATA_DIR")
    if not value or not Path(value, "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("DIGITS_DATA_DIR with the MNIST files is not set")
    return Path(value)


@pytest.fixture(scope="session")
def artifact() -> Path:
    return DEFAULT_ARTIFACT


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real ``digits serve`` process (embedded backend) shared by a test session."""
    with gateway_process(tmp_path_factory.mktemp("gateway")) as server:
        yield server
