"""The ConvNet, defined once. Scripted with ``torch.jit.script`` for serving.

Input is a normalized batch ``[N, 1, 28, 28]`` (mean/std come from the model card).
Besides ``forward`` the scripted module exports ``forward_features``, which returns
the logits together with the output of every convolution and pooling stage, in order,
so a server can show feature maps without running the network twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Conv:
    """A convolution block: ``width`` output channels; ``padding=None`` keeps the size at stride 1."""

    width: int
    kernel_size: int = 3
    stride: int = 1
    padding: int | None = None

    @property
    def pad(self) -> int:
        return self.kernel_size // 2 if self.padding is None else self.padding


@dataclass(frozen=True)
class Pool:
    """2x2 max pooling, stride 2."""


# Model 2: a 5x5 stride-2 convolution halves the resolution at once, then one convolution per resolution
# (14x14, 7x7), each closed by pooling, and a 128-unit hidden layer. 4.3 M multiply-adds against model 1's
# 9.3 M, and three convolutions instead of four.
LAYOUT: tuple[Conv | Pool, ...] = (Conv(32, kernel_size=5, stride=2), Conv(48), Pool(), Conv(64), Pool())
HIDDEN = 128
DROPOUT = 0.25


class ConvBlock(nn.Module):
    """Convolution, batch norm, ReLU: the unit every stage is made of."""

    def __init__(self, in_channels: int, spec: Conv) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, spec.width, spec.kernel_size, spec.stride, spec.pad, bias=False)
        self.bn = nn.BatchNorm2d(spec.width)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


class ConvNet(nn.Module):
    """Convolution blocks and max pooling in the order of ``layout``, then a fully-connected head: one hidden
    layer of ``hidden`` units (``fc1``, ``fc2``), or with ``hidden=None`` a single ``fc1``; dropout before the last."""

    def __init__(
        self,
        layout: tuple[Conv | Pool, ...] = LAYOUT,
        hidden: int | None = HIDDEN,
        num_classes: int = 10,
        image_size: int = 28,
        dropout: float = DROPOUT,
    ) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {}
        channels, size, convs, pools = 1, image_size, 0, 0
        for spec in layout:
            if isinstance(spec, Conv):
                convs += 1
                layers[f"conv{convs}"] = ConvBlock(channels, spec)
                channels = spec.width
                size = (size + 2 * spec.pad - spec.kernel_size) // spec.stride + 1
            else:
                pools += 1
                layers[f"pool{pools}"] = nn.MaxPool2d(kernel_size=2, stride=2)
                size //= 2
        self.features = nn.ModuleDict(layers)
        self.flatten = nn.Flatten()
        head: list[nn.Module] = []
        width = channels * size * size
        if hidden is not None:
            head += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        head += [nn.Dropout(dropout), nn.Linear(width, num_classes)]
        self.head = nn.Sequential(*head)

    def linear_layers(self) -> list[nn.Linear]:
        return [layer for layer in self.head if isinstance(layer, nn.Linear)]

    def classify(self, x: Tensor) -> Tensor:
        logits: Tensor = self.head(self.flatten(x))
        return logits

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.features.values():
            x = layer(x)
        return self.classify(x)

    @torch.jit.export
    def forward_features(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits and the feature maps of every stage, keyed by layer name in network order."""
        maps: dict[str, Tensor] = {}
        for name, layer in self.features.items():
            x = layer(x)
            maps[name] = x
        return self.classify(x), maps

    @torch.no_grad()
    def divide_logits(self, temperature: float) -> None:
        """Bake temperature scaling into the last layer (``W x / T + b / T``): calibrated logits at no cost,
        on every device and backend that runs the artifact."""
        last = self.linear_layers()[-1]
        last.weight.div_(temperature)
        last.bias.div_(temperature)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
