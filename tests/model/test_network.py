from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

from model.card import load_card
from model.layers import describe_layers
from model.network import Conv, ConvNet, Pool

LOADER = """
import json, sys, torch
module = torch.jit.load(sys.argv[1])
x = torch.zeros(3, 1, 28, 28)
logits = module(x)
logits2, maps = module.forward_features(x)
print(json.dumps({
    "logits": list(logits.shape),
    "same": bool(torch.allclose(logits, logits2, atol=1e-5)),
    "maps": [[name, list(t.shape)] for name, t in maps.items()],
    "project_imported": sorted(m for m in ("model", "service") if m in sys.modules),
}))
"""


def load_in_clean_process(artifact: Path, cwd: Path) -> dict[str, object]:
    """torch.jit.load in an isolated interpreter (-I) outside the repo: no project code on the path."""
    out = subprocess.run(
        [sys.executable, "-I", "-c", LOADER, str(artifact)], cwd=cwd, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_scripted_model_loads_without_project_code(tmp_path: Path) -> None:
    model = ConvNet(layout=(Conv(8), Pool(), Conv(16), Conv(16), Pool()), hidden=24).eval()
    path = tmp_path / "net.pt"
    torch.jit.script(model).save(str(path))
    result = load_in_clean_process(path, tmp_path)
    assert result["project_imported"] == []
    assert result["logits"] == [3, 10]
    assert result["same"] is True
    expected = [[row.name, [3, *row.output_shape]] for row in describe_layers(model) if row.feature_map]
    assert result["maps"] == expected


def test_shipped_artifact_matches_its_layer_table(artifact: Path, tmp_path: Path) -> None:
    card = load_card(artifact)
    result = load_in_clean_process(artifact.resolve(), tmp_path)
    assert result["project_imported"] == []
    assert result["logits"] == [3, 10]
    assert result["maps"] == [[row.name, [3, *row.output_shape]] for row in card.layers if row.feature_map]


def test_layer_table_follows_the_shape_formula() -> None:
    rows = describe_layers(ConvNet())
    size = 28
    for row in rows:
        if row.kind in ("conv", "maxpool"):
            assert row.kernel_size is not None and row.stride is not None and row.padding is not None
            size = (size - row.kernel_size + 2 * row.padding) // row.stride + 1
            assert row.output_shape[1:] == [size, size]
    assert [(r.kind, r.name, r.output_shape) for r in rows][-3:] == [
        ("flatten", "flatten", [576]), ("linear", "fc1", [128]), ("linear", "fc2", [10]),
    ]  # fmt: skip
    no_hidden = describe_layers(ConvNet(hidden=None))
    assert [(r.name, r.output_shape) for r in no_hidden][-2:] == [("flatten", [576]), ("fc1", [10])]
