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


class ModelRunner:
    def __init__(self, artifact: Path, device: torch.device, torch_threads: int) -> None:
        torch.set_num_threads(torch_threads)
        self.device = device
        card = load_card(artifact)
        self._saliency_outputs = saliency_outputs(len(card.labels))
        self._black = float(card.input.normalize(np.zeros(1, np.float32))[0])  # a black pixel
        module = torch.jit.load(str(artifact), map_location=device).eval()
        self._gradients = module  # optimize_for_inference returns a copy without autograd: saliency uses this one
        if device.type == "cpu":
            # oneDNN convolutions: about twice the batched CPU throughput, same outputs within 1e-6.
            module = torch.jit.optimize_for_inference(module, other_methods=["forward_features"])
        self._module = module
        warmup = np.zeros((8, 1, 28, 28), dtype=np.float32)
        every_output = frozenset([*card.feature_layers, *self._saliency_outputs])
        for layers in (NO_LAYERS, every_output, NO_LAYERS):
            self.run(warmup, layers)

    def run(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        """Probabilities of a normalized float32 ``[n, 1, 28, 28]`` batch, the feature maps of ``layers``, and when
        ``layers`` names saliency outputs (``saliency``: of each image's predicted class, ``saliency.3``: of class 3)
        their maps ``[n, 28, 28]``."""
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            if layers:
                logits, maps = self._module.forward_features(x)
                features = {name: t.float().cpu().numpy() for name, t in maps.items() if name in layers}
            else:
                logits, features = self._module(x), {}
            probabilities = torch.softmax(logits.float(), dim=1).cpu().numpy()
        for name, label in self._saliency_outputs.items():
            if name in layers:
                targets = probabilities.argmax(axis=1) if label is None else np.full(len(batch), label)
                features[name] = gradient_times_input(self._gradients, batch, targets, self._black, self.device)
        return BatchOutput(probabilities, features)
