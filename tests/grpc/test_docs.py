"""docs/grpc.md keeps telling the truth: its example prints what it says against a real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.grpc.conftest import GrpcGateway

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "grpc.md").read_text()


def test_the_example_prints_what_the_doc_says(grpc_gateway: GrpcGateway) -> None:
    (code,) = re.findall(r"```python\n(.*?)```", DOC, re.DOTALL)
    (printed,) = re.findall(r"```text\n(.*?)```", DOC, re.DOTALL)
    script = code.replace('url="127.0.0.1:8001"', f'url="{grpc_gateway.grpc_address}"')
    assert script != code, "the example no longer names the server it talks to"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed


def test_every_rpc_of_the_proto_is_documented() -> None:
    proto = (ROOT / "service" / "grpc" / "generated" / "predict_v2.proto").read_text()
    rpcs = re.findall(r"^\s*rpc (\w+)\(", proto, re.MULTILINE)
    assert rpcs and [rpc for rpc in rpcs if f"| `{rpc}` |" not in DOC] == []
