"""The layer table of a ConvNet, computed by running the model rather than written by hand."""

from __future__ import annotations

import torch
from torch import nn

from model.card import Layer
from model.network import ConvBlock, ConvNet


def _as_int(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else int(value[0])


def describe_layers(model: ConvNet, image_size: int = 28) -> list[Layer]:
    """Name, kind, kernel, stride, padding and per-sample output shape of every layer."""
    rows: list[Layer] = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = torch.zeros(1, 1, image_size, image_size)
        for name, module in model.features.items():
            x = module(x)
            shape = list(x.shape[1:])
            if isinstance(module, ConvBlock):
                conv = module.conv
                rows.append(
                    Layer(
                        name=name,
                        kind="conv",
                        kernel_size=_as_int(conv.kernel_size),
                        stride=_as_int(conv.stride),
                        padding=_as_int(conv.padding),  # type: ignore[arg-type]
                        output_shape=shape,
                        feature_map=True,
                    )
                )
            elif isinstance(module, nn.MaxPool2d):
                rows.append(
                    Layer(
                        name=name,
                        kind="maxpool",
                        kernel_size=_as_int(module.kernel_size),
                        stride=_as_int(module.stride),
                        padding=_as_int(module.padding),
                        output_shape=shape,
                        feature_map=True,
                    )
                )
            else:
                raise TypeError(f"describe_layers does not know layer {name!r} ({type(module).__name__})")
        x = model.flatten(x)
        rows.append(Layer(name="flatten", kind="flatten", output_shape=list(x.shape[1:]), feature_map=False))
        for number, linear in enumerate(model.linear_layers(), start=1):
            x = linear(x)
            rows.append(Layer(name=f"fc{number}", kind="linear", output_shape=list(x.shape[1:]), feature_map=False))
    model.train(was_training)
    return rows
