"""Admitting a model version, the steps before it may take traffic: read; check the hash and the input spec; load;
run a batch to check the output shape; run the probe set and check its answers. The server also warms the model at
every batch size between loading and probing (service/core/model_runner.py does, as it loads)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from model.probes import Predict, check_probes
from model.refusal import RefusalCode, VersionRefused
from model.repository import SERVED_INPUT_SHAPE, ModelRepository, ModelVersion

SHAPE_CHECK_BATCH = 2


@dataclass(frozen=True)
class AdmittedVersion:
    """A version that passed every step, with its loaded module (eval mode, on the device it was loaded to)."""

    found: ModelVersion
    module: torch.jit.ScriptModule


def load_module(found: ModelVersion, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """Load ``found``'s TorchScript file (``corrupt_artifact`` if it is not TorchScript) and run a zero batch
    through it (``wrong_input_shape`` if it does not take 1x28x28 images or answer one score per label)."""
    try:
        module: torch.jit.ScriptModule = torch.jit.load(str(found.artifact), map_location=device).eval()
    except (RuntimeError, ValueError) as exc:
        raise VersionRefused(
            RefusalCode.CORRUPT_ARTIFACT, found.version, f"{found.artifact} is not loadable TorchScript: {exc}"
        ) from None
    batch = torch.zeros(SHAPE_CHECK_BATCH, *SERVED_INPUT_SHAPE, device=device)
    try:
        with torch.inference_mode():
            output = module(batch)
    except RuntimeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VersionRefused(
            RefusalCode.WRONG_INPUT_SHAPE,
            found.version,
            f"the model fails on a {SERVED_INPUT_SHAPE} float32 batch: {first_line}",
        ) from None
    expected = (SHAPE_CHECK_BATCH, len(found.card.labels))
    if not isinstance(output, torch.Tensor) or tuple(output.shape) != expected:
        shape = list(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise VersionRefused(
            RefusalCode.WRONG_INPUT_SHAPE,
            found.version,
            f"the model answers a batch of {SHAPE_CHECK_BATCH} with {shape}, not {list(expected)}",
        )
    return module


def module_predict(module: torch.jit.ScriptModule, device: torch.device | str = "cpu") -> Predict:
    """``module`` as check_probes runs it: a normalized float32 batch to float32 scores on the CPU."""

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            scores: np.ndarray = module(torch.from_numpy(batch).to(device)).float().cpu().numpy()
        return scores

    return predict


def admit(repository: ModelRepository, version: str, device: torch.device | str = "cpu") -> AdmittedVersion:
    """Every step but warming, in order, on plain TorchScript; the first that fails raises ``VersionRefused``."""
    found = repository.verify(version)
    module = load_module(found, device)
    check_probes(found.card, module_predict(module, device))
    return AdmittedVersion(found=found, module=module)
