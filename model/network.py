"""The ConvNet, defined once. Scripted with ``torch.jit.script`` for serving.

Input is a normalized batch ``[N, 1, 28, 28]`` (mean/std come from the model card).
Besides ``forward`` the scripted module exports ``forward_features``, which returns
the logits together with the output of every convolution and pooling stage, in order,
so a server can show feature maps without running the network twice.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConvBlock(nn.Module):
    """3x3 convolution, batch norm, ReLU: the unit every stage is made of."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


class ConvNet(nn.Module):
    """Stages of conv blocks each closed by max pooling, then a fully-connected head.

    ``stages`` lists the channel widths of each stage's blocks, e.g. ``((16, 32), (32, 64))``.
    """

    def __init__(
        self,
        stages: tuple[tuple[int, ...], ...] = ((16, 32), (32, 64)),
        hidden: int = 64,
        num_classes: int = 10,
        image_size: int = 28,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        layers: dict[str, nn.Module] = {}
        in_channels, size, index = 1, image_size, 0
        for stage_number, widths in enumerate(stages, start=1):
            for width in widths:
                index += 1
                layers[f"conv{index}"] = ConvBlock(in_channels, width)
                in_channels = width
            layers[f"pool{stage_number}"] = nn.MaxPool2d(kernel_size=2, stride=2)
            size //= 2
        self.features = nn.ModuleDict(layers)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(in_channels * size * size, hidden)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def head(self, x: Tensor) -> Tensor:
        logits: Tensor = self.fc2(self.dropout(torch.relu(self.fc1(self.flatten(x)))))
        return logits

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.features.values():
            x = layer(x)
        return self.head(x)

    @torch.jit.export
    def forward_features(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Logits and the feature maps of every stage, keyed by layer name in network order."""
        maps: dict[str, Tensor] = {}
        for name, layer in self.features.items():
            x = layer(x)
            maps[name] = x
        return self.head(x), maps


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
