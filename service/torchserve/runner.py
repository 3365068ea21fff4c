"""The TorchScript model inside a TorchServe worker: load once, run batches, return numpy arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from service.backends.base import BatchOutput


class HandlerConfig(BaseModel):
    """The ``handler`` section of the archive's model-config.yaml."""

    model_config = ConfigDict(extra="forbid")

    torch_threads: int = Field(default=1, ge=1, description="intra-op threads per worker; one worker per core wants 1")
    max_images_per_request: int = Field(default=128, ge=1, description="at least the gateway's DIGITS_MAX_BATCH_SIZE")


def worker_device(gpu_id: int | None) -> torch.device:
    """The GPU TorchServe assigned to this worker, or the CPU."""
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


class ModelRunner:
    def __init__(self, artifact: Path, device: torch.device, torch_threads: int) -> None:
        torch.set_num_threads(torch_threads)
        self.device = device
        module = torch.jit.load(str(artifact), map_location=device).eval()
        if device.type == "cpu":  # oneDNN convolutions, as in the embedded backend: same outputs within 1e-6
            module = torch.jit.optimize_for_inference(module, other_methods=["forward_features"])
        self._module = module
        warmup = np.zeros((8, 1, 28, 28), dtype=np.float32)
        for with_features in (False, True, False):
            self.run(warmup, with_features)

    def run(self, batch: np.ndarray, with_features: bool) -> BatchOutput:
        """Probabilities (and every feature map) of a normalized float32 ``[n, 1, 28, 28]`` batch."""
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            if with_features:
                logits, maps = self._module.forward_features(x)
                features = {name: t.float().cpu().numpy() for name, t in maps.items()}
            else:
                logits, features = self._module(x), None
            probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        return BatchOutput(probabilities, features)
