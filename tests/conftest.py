"""Shared fixtures: MNIST location, labelled digits, the shipped artifact, a real gateway process."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.service_pb2 as triton_protocol_messages

from loadtest.samples import load_samples
from model.mnist import Split, load_test_split
from model.settings import DEFAULT_ARTIFACT
from ops.local_servers import ServerProcess
from tests.servers import gateway_process

LABELLED_DIGITS = 16

# tritonclient.grpc (tests/grpc) and kserve (tests/http) both register the protocol's messages as inference.* in
# protobuf's one descriptor pool, and a process cannot hold a name twice. The tests use kserve's REST client only,
# which never touches those messages: kserve gets Triton's module (the same messages and more) in place of its own.
sys.modules.setdefault("kserve.protocol.grpc.grpc_predict_v2_pb2", triton_protocol_messages)


def _mnist_dir() -> Path | None:
    value = os.environ.get("DIGITS_DATA_DIR")
    return Path(value) if value and Path(value, "t10k-images-idx3-ubyte.gz").exists() else None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The MNIST files (DIGITS_DATA_DIR); the Makefile points it at ../shared/data/mnist."""
    found = _mnist_dir()
    if found is None:
        pytest.skip("DIGITS_DATA_DIR with the MNIST files is not set")
    return found


@pytest.fixture(scope="session")
def labelled_digits() -> Split:
    """16 labelled 28x28 digits, ink bright on black: the first of the MNIST test split, or without MNIST the
    samples shipped in loadtest/samples (MNIST test digits the model labels right, in class order)."""
    found = _mnist_dir()
    if found is not None:
        split = load_test_split(found)
        return Split(split.images[:LABELLED_DIGITS], split.labels[:LABELLED_DIGITS])
    samples = load_samples()
    chosen = [samples[i * len(samples) // LABELLED_DIGITS] for i in range(LABELLED_DIGITS)]
    return Split(np.array([s.pixels for s in chosen], np.uint8), np.array([s.label for s in chosen], np.int64))


@pytest.fixture(scope="session")
def artifact() -> Path:
    return DEFAULT_ARTIFACT


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real ``digits serve`` process (embedded backend) shared by a test session."""
    with gateway_process(tmp_path_factory.mktemp("gateway")) as server:
        yield server
