"""The committed Python modules are what grpcio-tools makes of the committed .proto (`make grpc-stubs`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "service" / "grpc" / "generated"
PROTO = "predict_v2.proto"
MODULES = ("predict_v2_pb2.py", "predict_v2_pb2.pyi")


def test_the_stubs_match_the_proto(tmp_path: Path) -> None:
    arguments = [
        "protoc",
        f"-I{GENERATED}",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        str(GENERATED / PROTO),
    ]
    assert protoc.main(arguments) == 0
    stale = [name for name in MODULES if (tmp_path / name).read_text() != (GENERATED / name).read_text()]
    assert stale == [], "run `make grpc-stubs` and commit the result"


@pytest.mark.parametrize("client", ["kserve.protocol.grpc.grpc_predict_v2_pb2", "tritonclient.grpc"])
def test_the_stubs_load_beside_a_clients(client: str) -> None:
    """KServe's and Triton's modules name their messages inference.*, ours digits.inference.*: Python's one
    descriptor pool takes both. (KServe's and Triton's cannot share a process with each other.)"""
    script = f"import {client}, service.grpc.generated.predict_v2_pb2"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
