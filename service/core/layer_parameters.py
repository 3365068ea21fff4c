"""A layer's parameters as served: the convolution weights read off the TorchScript artifact itself.

The artifact is frozen (``torch.jit.freeze``), which folds each batch norm into the convolution before it: the
weights and bias of a ``conv`` layer here are those the served model computes with, so
``relu(conv2d(input, weight, bias, stride, padding))`` is the layer's feature map. Stride and padding come from
the model card's layer table, which training read off the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from model.card import ModelCard
from service.core.errors import ApiError, ErrorCode
from service.core.features import TILE_GAP, encode_array, png_base64, signed_gray, tile

ParameterFormat = Literal["array", "png"]
BATCH_NORM = "folded into weight and bias (the artifact is frozen); apply ReLU after the convolution"


@dataclass(frozen=True)
class ConvParameters:
    weight: np.ndarray  # float32 [out, in, k, k]
    bias: np.ndarray  # float32 [out]


class LayerParameters:
    """Every layer of the card, with the served weights of its convolutions."""

    def __init__(self, card: ModelCard, convolutions: dict[str, ConvParameters]) -> None:
        self._card = card
        self._convolutions = convolutions

    @classmethod
    def load(cls, artifact: Path, card: ModelCard) -> LayerParameters:
        """The convolutions of the artifact's ``forward_features`` graph, in order, named by the card's conv rows."""
        module = torch.jit.load(str(artifact), map_location="cpu")
        nodes = [node for node in module.forward_features.graph.nodes() if node.kind() == "aten::conv2d"]
        names = [layer.name for layer in card.layers if layer.kind == "conv"]
        if len(nodes) != len(names):
            raise ValueError(f"{artifact} has {len(nodes)} inlined convolutions, its card {len(names)}: is it frozen?")
        convolutions = {}
        for name, node in zip(names, nodes, strict=True):
            weight, bias = (value.toIValue() for value in list(node.inputs())[1:3])
            if not isinstance(weight, torch.Tensor) or not isinstance(bias, torch.Tensor):
                raise ValueError(f"{artifact}: {name} has no constant weight and bias: is it frozen?")
            convolutions[name] = ConvParameters(weight.float().numpy(), bias.float().numpy())
        return cls(card, convolutions)

    def describe(self, name: str, fmt: ParameterFormat) -> dict[str, Any]:
        """The card's row for ``name`` and, for a convolution, its weight (in ``fmt``) and bias (an array)."""
        layer = next((layer for layer in self._card.layers if layer.name == name), None)
        if layer is None:
            names = ", ".join(layer.name for layer in self._card.layers)
            raise ApiError(ErrorCode.unknown_layer, f"unknown layer {name!r}; the model has {names}")
        body: dict[str, Any] = layer.model_dump(exclude={"feature_map"})
        conv = self._convolutions.get(name)
        if conv is not None:
            weight = encode_array(conv.weight) if fmt == "array" else _kernel_grid(conv.weight)
            body.update(batch_norm=BATCH_NORM, weight=weight, bias=encode_array(conv.bias))
        return body


def _kernel_grid(weight: np.ndarray) -> dict[str, Any]:
    """Kernels ``[out, in, k, k]`` as one PNG: a row per output channel, a column per input channel. Mid-gray is 0,
    white and black the layer's largest weight magnitude, positive and negative."""
    out_channels, in_channels, height, width = weight.shape
    canvas = tile(signed_gray(weight).reshape(-1, height, width), out_channels, in_channels)
    grid = {"rows": out_channels, "cols": in_channels, "tile_height": height, "tile_width": width, "gap": TILE_GAP}
    return {"format": "png", "shape": list(weight.shape), "data": png_base64(canvas), "grid": grid}
