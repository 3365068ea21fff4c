"""The model in this process: TorchScript on CPU or CUDA, run on its own thread (or, for one small batch on an
idle model, right on the event loop)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from model.device import resolve_device
from service.core.backend import Backend
from service.core.model_runner import ModelRunner
from service.core.types import BatchOutput


class EmbeddedBackend(Backend):
    name = "embedded"
    predicts_inline = True

    def __init__(self, artifact: Path, device: str = "auto", torch_threads: int = 1) -> None:
        if not artifact.is_file():
            raise FileNotFoundError(
                f"model artifact {artifact} does not exist; set DIGITS_ARTIFACT or run digits train"
            )
        self._artifact = artifact
        self._device = resolve_device(device, setting="DIGITS_DEVICE=")
        self._torch_threads = torch_threads
        # One thread owns the model: calls are serialized, and the event loop never blocks on them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._runner: ModelRunner | None = None

    @property
    def device(self) -> str:
        return str(self._device)

    async def setup(self) -> None:
        torch.set_num_threads(self._torch_threads)  # a thread's own setting: here the event loop's, for predict_now
        self._runner = await asyncio.get_running_loop().run_in_executor(
            self._executor, ModelRunner, self._artifact, self._device, self._torch_threads
        )
        for _ in range(3):  # the event loop thread's first model calls set up its own state: not on a request
            self._runner.run(np.zeros((1, 1, 28, 28), dtype=np.float32), frozenset())

    async def predict(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        assert self._runner is not None, "setup() was not awaited"
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._runner.run, batch, layers)

    def predict_now(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        assert self._runner is not None, "setup() was not awaited"
        return self._runner.run(batch, layers)

    async def ready(self) -> bool:
        return self._runner is not None

    async def close(self) -> None:
        self._runner = None
        self._executor.shutdown(wait=True)
