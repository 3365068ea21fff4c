"""docs/grpc.md keeps telling the truth: its example prints what it says against a real server."""

from __future__ import annotations

import re
from pathlib import Path

from tests.doc_examples import check_python_example
from tests.grpc.conftest import GrpcGateway

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "grpc.md").read_text()


def test_the_example_prints_what_the_doc_says(grpc_gateway: GrpcGateway) -> None:
    check_python_example(DOC, 'url="127.0.0.1:8001"', f'url="{grpc_gateway.grpc_address}"')


def test_every_rpc_of_the_proto_is_documented() -> None:
    proto = (ROOT / "service" / "grpc" / "generated" / "predict_v2.proto").read_text()
    rpcs = re.findall(r"^\s*rpc (\w+)\(", proto, re.MULTILINE)
    assert rpcs and [rpc for rpc in rpcs if f"| `{rpc}` |" not in DOC] == []
