"""Which torch device a job or a server runs on."""

from __future__ import annotations

import torch


def resolve_device(name: str, setting: str = "--device ") -> torch.device:
    """``auto`` is CUDA when present, else the CPU; asking for ``cuda`` without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{setting}cuda was asked for but CUDA is not available here; use cpu or auto")
    return torch.device(name)
