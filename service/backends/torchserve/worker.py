"""What each TorchServe worker is configured with: the archive's handler settings and its device."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field


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
