"""The committed Python modules are what grpcio-tools makes of the committed .proto (`make grpc-stubs`)."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc

GENERATED = Path(__file__).resolve().parents[2] / "service" / "grpc" / "generated"
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
