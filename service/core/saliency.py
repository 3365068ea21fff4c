"""Saliency: how much each input pixel drove a class, by gradient x input on the served model.

For the logit ``z_c`` of the class ``c`` (the predicted one unless a request chooses another) and the MNIST
field ``f`` (0-255, ink bright) that the network takes normalized as ``x = (f / 255 - mean) / std``, the
saliency of a pixel is ``f * dz_c/df``, which is ``(x - x_black) * dz_c/dx`` with ``x_black`` the normalized
value of a black pixel. It is gradient x input with a
black (no-ink) baseline: signed, in logit units, zero wherever there is no ink, and its sum is the first-order
estimate of ``z_c(input) - z_c(black field)``.

The gradient comes from autograd through the TorchScript module as loaded from the artifact (frozen, batch norm
folded); the CPU-optimized copy that serves predictions has no autograd. Both backends compute it in the same
:class:`~service.core.model_runner.ModelRunner`: the gateway asks for it like a feature layer, named
``saliency`` (the predicted class) or ``saliency.3`` (class 3).
"""

from __future__ import annotations

import numpy as np
import torch


def gradient_times_input(
    module: torch.jit.ScriptModule, batch: np.ndarray, targets: np.ndarray, black: float, device: torch.device
) -> np.ndarray:
    """Saliency ``[n, 28, 28]`` of a normalized batch ``[n, 1, 28, 28]`` for the classes ``targets``."""
    with torch.enable_grad():
        x = torch.from_numpy(batch).to(device).requires_grad_(True)
        logits = module(x)
        # The images of a batch do not interact (eval mode): one backward pass gives every image's gradient.
        chosen = logits.gather(1, torch.as_tensor(targets, dtype=torch.long, device=x.device).view(-1, 1)).sum()
        (gradient,) = torch.autograd.grad(chosen, x)
    saliency: np.ndarray = ((x.detach() - black) * gradient)[:, 0].float().cpu().numpy()
    return saliency
