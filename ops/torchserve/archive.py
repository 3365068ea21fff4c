"""``digits export-mar``: the TorchScript artifact, its card and our handler as one TorchServe archive.

The archive is self-contained: besides ``handler.py`` it carries the modules of ``model`` and ``service``
that the handler imports (found by :mod:`modulefinder`, so the list cannot go stale), laid out as
packages. TorchServe puts the unpacked archive first on the worker's ``sys.path``, so the handler runs
exactly the gateway code the archive was built from: the same pipeline, normalization and feature-map
encoder. Third-party packages (torch, numpy, pydantic, ...) come from TorchServe's Python.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from modulefinder import ModuleFinder
from pathlib import Path

import yaml
from pydantic import ValidationError

from model.card import card_path_for, load_card
from service.backends.torchserve.worker import HandlerConfig

log = logging.getLogger(__name__)

SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the directory that holds the model and service packages
HANDLER = SOURCE_ROOT / "service" / "backends" / "torchserve" / "handler.py"
DEFAULT_MODEL_CONFIG = SOURCE_ROOT / "deploy" / "torchserve" / "model-config.yaml"
DEFAULT_MODEL_NAME = "digits"


def handler_modules() -> list[Path]:
    """Our source files the handler imports, directly or not, relative to :data:`SOURCE_ROOT`."""
    finder = ModuleFinder(path=[str(SOURCE_ROOT)])  # only our packages resolve; nothing else is scanned
    finder.run_script(str(HANDLER))
    files = {getattr(module, "__file__", None) for name, module in finder.modules.items() if name != "__main__"}
    return sorted(Path(file).relative_to(SOURCE_ROOT) for file in files if file)


def check_model_config(model_config: Path) -> None:
    """Refuse a model-config.yaml TorchServe would misread or our handler would reject."""
    if not model_config.is_file():
        raise FileNotFoundError(f"model config {model_config} does not exist; see deploy/torchserve/model-config.yaml")
    config = yaml.safe_load(model_config.read_text()) or {}
    for key in ("batchSize", "maxBatchDelay"):
        if not isinstance(config.get(key), int) or config[key] < (1 if key == "batchSize" else 0):
            raise ValueError(f"{model_config}: {key} must be a non-negative integer (batchSize at least 1)")
    try:
        HandlerConfig.model_validate(config.get("handler") or {})
    except ValidationError as exc:
        raise ValueError(f"{model_config}: invalid handler section: {exc}") from exc


def build_archive(
    artifact: Path,
    export_dir: Path,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    model_config: Path = DEFAULT_MODEL_CONFIG,
) -> Path:
    """Write ``<export_dir>/<model_name>.mar`` (replacing it) and return its path."""
    if not artifact.is_file():
        raise FileNotFoundError(f"model artifact {artifact} does not exist; run digits train or set --artifact")
    card = load_card(artifact)
    check_model_config(model_config)
    export_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="digits-mar-") as work:
        staging = Path(work, "modules")
        modules = handler_modules()
        for relative in modules:
            (staging / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(SOURCE_ROOT / relative, staging / relative)
        command = [
            sys.executable, "-m", "model_archiver.model_packaging",
            "--model-name", model_name,
            "--version", card.version,
            "--serialized-file", str(artifact),
            "--handler", str(HANDLER),
            "--extra-files", f"{staging},{card_path_for(artifact)}",
            "--config-file", str(model_config),
            "--export-path", str(export_dir),
            "--force",
        ]  # fmt: skip
        # The archiver stages files in $TMPDIR/<model name>: give it a private TMPDIR so builds can run in parallel.
        result = subprocess.run(command, env={**os.environ, "TMPDIR": work}, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"torch-model-archiver failed ({result.returncode}): {result.stderr.strip()}")
    mar = export_dir / f"{model_name}.mar"
    log.info("wrote %s: %s %s, handler and %d modules", mar, card.name, card.version, len(modules))
    return mar
