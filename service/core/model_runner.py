"""The TorchScript model on one device: load once, warm up, run normalized batches to numpy outputs.

The embedded backend, the TorchServe handler and the benchmark's model loop all run the model
through this class, so they measure and serve exactly the same thing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from model.card import load_card
from service.core.explanations import saliency_outputs
from service.core.saliency import gradient_times_input
from service.core.types import BatchOutput

NO_LAYERS: frozenset[str] = frozenset()

# On the CPU, oneDNN Graph fuses each convolution with its bias and ReLU (and pooling) into one primitive
# on plain tensors: at batch 1 the network runs about twice as fast as with optimize_for_inference's oneDNN
# convolutions, which pay a layout reorder and a separate ReLU per layer. Fused kernels are compiled per
# input shape, so a batch runs as chunks of these sizes only (45 images: 32 + 8 + 4 + 1), each on its own copy
# of the module, compiled at start-up. TorchScript checks a call's shapes against every specialization a
# module has seen, in turn: one module for all sizes costs more per call than a module that only ever sees one
# shape (measured: docs/model.md).
CPU_CHUNKS = (32, 16, 8, 4, 2, 1)


class ModelRunner:
    def __init__(self, artifact: Path, device: torch.device, torch_threads: int) -> None:
        torch.set_num_threads(torch_threads)
        self.device = device
        card = load_card(artifact)
        self._saliency_outputs = saliency_outputs(len(card.labels))
        self._black = float(card.input.normalize(np.zeros(1, np.float32))[0])  # a black pixel
        self._chunks = CPU_CHUNKS if device.type == "cpu" else ()
        if self._chunks:
            torch.jit.enable_onednn_fusion(True)  # process-wide; read when a graph is first optimized
        self._module = torch.jit.load(str(artifact), map_location=device).eval()  # any batch size (CUDA)
        self._chunk_modules = {size: torch.jit.load(str(artifact), map_location=device).eval() for size in self._chunks}
        self._gradients = torch.jit.load(str(artifact), map_location=device).eval()  # its own plans, with autograd
        # TorchScript profiles a graph's first runs per shape before it fuses: each chunk size, both methods.
        every_layer = frozenset(card.feature_layers)
        with torch.inference_mode():
            for size in self._chunks:
                for layers in (NO_LAYERS, every_layer) * 3:
                    self._forward(torch.zeros(size, 1, 28, 28, device=device), layers)
        warmup = np.zeros((8, 1, 28, 28), dtype=np.float32)
        for layers in (NO_LAYERS, every_layer | frozenset(self._saliency_outputs), NO_LAYERS):
            self.run(warmup, layers)

    def run(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        """Probabilities of a normalized float32 ``[n, 1, 28, 28]`` batch, the feature maps of ``layers``, and when
        ``layers`` names saliency outputs (``saliency``: of each image's predicted class, ``saliency.3``: of class 3)
        their maps ``[n, 28, 28]``."""
        with torch.inference_mode():
            x = _row_major(torch.from_numpy(batch)).to(self.device, non_blocking=True)
            parts = [self._forward(chunk, layers) for chunk in self._split(x)]
            logits = torch.cat([part_logits for part_logits, _ in parts])
            features = {name: np.concatenate([maps[name] for _, maps in parts]) for name in parts[0][1]}
            probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        for name, label in self._saliency_outputs.items():
            if name in layers:
                targets = probabilities.argmax(axis=1) if label is None else np.full(len(batch), label)
                features[name] = gradient_times_input(self._gradients, batch, targets, self._black, self.device)
        return BatchOutput(probabilities, features)

    def _split(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self._chunks or len(x) == 0:
            return [x]
        chunks, start = [], 0
        for size in self._chunks:
            while len(x) - start >= size:
                chunks.append(x[start : start + size])
                start += size
        return chunks

    def _forward(self, x: torch.Tensor, layers: frozenset[str]) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        module = self._chunk_modules.get(len(x), self._module)
        if not layers:
            return module(x), {}
        logits, maps = module.forward_features(x)
        return logits, {name: t.float().cpu().numpy() for name, t in maps.items() if name in layers}


def _row_major(x: torch.Tensor) -> torch.Tensor:
    """``x`` with the strides of a fresh row-major tensor. numpy gives an axis added with ``None`` a stride of 0,
    which is contiguous all the same, but the fused CPU kernels misread it and compute wrong outputs."""
    strides, step = [], 1
    for size in reversed(x.shape):
        strides.append(step)
        step *= size
    return x if x.stride() == tuple(reversed(strides)) else x.clone(memory_format=torch.contiguous_format)
