"""What export does to the network: the temperature baked into the last layer, batch norm folded by freezing."""

from __future__ import annotations

import torch
from torch import nn

from model.network import ConvNet


def trained_looking(model: ConvNet) -> ConvNet:
    """Non-trivial batch-norm statistics, as after training, so folding them is really tested."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator))
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(n, generator=generator))
            module.bias.data.copy_(torch.randn(n, generator=generator))
    return model.eval()


def test_dividing_the_logits_changes_them_and_no_feature_map() -> None:
    model = trained_looking(ConvNet())
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before, maps_before = model.forward_features(x)
        model.divide_logits(temperature=1.7)
        after, maps_after = model.forward_features(x)
    torch.testing.assert_close(after, before / 1.7, rtol=1e-4, atol=1e-5)
    for name, feature_map in maps_before.items():
        torch.testing.assert_close(maps_after[name], feature_map)


def test_the_frozen_network_matches_eager_with_batch_norm_folded() -> None:
    model = trained_looking(ConvNet(hidden=32, dropout=0.3))
    model.divide_logits(temperature=0.8)
    scripted = torch.jit.freeze(torch.jit.script(model), preserved_attrs=["forward_features"])
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-5)
    for graph in (scripted.graph, scripted.forward_features.graph):
        assert "aten::batch_norm" not in str(graph) and "aten::dropout" not in str(graph)
