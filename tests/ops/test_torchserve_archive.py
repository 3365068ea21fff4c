"""``digits export-mar``: a self-contained archive built from the committed artifact."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from model.card import load_card
from ops.torchserve.archive import DEFAULT_MODEL_CONFIG, SOURCE_ROOT, build_archive, handler_modules


def test_the_handler_needs_the_gateways_own_modules() -> None:
    modules = {str(path) for path in handler_modules()}
    expected = {"service/core/pipeline.py", "service/core/predictions.py", "service/backends/torchserve/wire.py"}
    assert expected <= modules and "model/card.py" in modules
    # Nothing the handler does not import: no FastAPI app, no HTTP adapter, no gateway, no ops tooling.
    assert not {path for path in modules if path.startswith(("service/http/", "service/ui/", "ops/"))}
    assert not {"service/app.py", "service/core/gateway.py", "service/core/batcher.py"} & modules


def test_export_mar_writes_a_self_contained_archive(artifact: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digits_cli.main", "export-mar", "--artifact", str(artifact), "--out", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(tmp_path / "digits.mar") as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("MAR-INF/MANIFEST.json"))
        packed_features = archive.read("service/core/features.py")
        packed_config = archive.read("model-config.yaml")
    assert manifest["model"]["modelName"] == "digits" and manifest["model"]["handler"] == "handler.py"
    assert manifest["model"]["serializedFile"] == artifact.name
    assert manifest["model"]["modelVersion"] == load_card(artifact).version
    assert {artifact.name, artifact.with_suffix(".json").name, "handler.py"} <= names
    assert {str(path) for path in handler_modules()} <= names
    assert packed_features == (SOURCE_ROOT / "service" / "core" / "features.py").read_bytes()
    assert packed_config == DEFAULT_MODEL_CONFIG.read_bytes()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["digits.mar"]  # nothing else in the cwd


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("batchSize: 0\nmaxBatchDelay: 5\n", "batchSize"),
        ("batchSize: 8\n", "maxBatchDelay"),
        ("batchSize: 8\nmaxBatchDelay: 5\nhandler:\n  torch_threads: 0\n", "handler"),
        ("batchSize: 8\nmaxBatchDelay: 5\nhandler:\n  threads: 2\n", "handler"),
    ],
)
def test_a_bad_model_config_is_refused(artifact: Path, tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "model-config.yaml"
    path.write_text(config)
    with pytest.raises(ValueError, match=message):
        build_archive(artifact, tmp_path / "out", model_config=path)
    assert not (tmp_path / "out" / "digits.mar").exists()


def test_a_missing_artifact_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="digits train"):
        build_archive(tmp_path / "missing.pt", tmp_path)
