"""The network diagram: well-formed SVG drawn from the layer table, for the shipped and another network."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import torch
import torch.nn.functional as F

from model.card import Layer, ModelCard, load_card
from model.layers import describe_layers
from model.network import Conv, ConvNet, Pool
from service.core.settings import Settings
from service.ui.diagram import MINUS, TIMES, card_svg, network_svg, shape_text, size_rule

NS = {"svg": "http://www.w3.org/2000/svg"}
SMALL_NETWORK = ConvNet(layout=(Conv(8), Pool(), Conv(16), Pool(), Conv(16), Pool()), hidden=32)


@pytest.fixture(scope="module")
def card() -> ModelCard:
    """The card of the artifact a gateway started here would serve (DIGITS_ARTIFACT, else the shipped one)."""
    return load_card(Settings().model.artifact)


def parse(svg: bytes) -> ET.Element:
    return ET.fromstring(svg)  # raises on anything that is not well-formed XML


def stages(root: ET.Element) -> dict[str, ET.Element]:
    groups = [g for g in root.iter(f"{{{NS['svg']}}}g") if "stage" in g.get("class", "").split()]
    return {g.get("data-layer", ""): g for g in groups}


def texts(stage: ET.Element) -> list[str]:
    """The label lines under a stage: its name first."""
    lines = stage.iter(f"{{{NS['svg']}}}text")
    return [t.text or "" for t in lines if t.get("class") in ("stage-name", "stage-label")]


def front_sheet(stage: ET.Element) -> ET.Element:
    return [r for r in stage.iter(f"{{{NS['svg']}}}rect") if r.get("class") == "sheet"][-1]


def check_lists_layers(svg: bytes, layers: list[Layer], input_shape: list[int]) -> None:
    root = parse(svg)
    assert root.tag == f"{{{NS['svg']}}}svg"
    drawn = stages(root)
    assert list(drawn) == ["input", *(layer.name for layer in layers)]
    assert drawn["input"].get("data-shape") == shape_text(input_shape)
    for layer in layers:
        stage = drawn[layer.name]
        label = texts(stage)
        assert stage.get("data-kind") == ("output" if layer is layers[-1] else layer.kind)
        assert stage.get("data-shape") == shape_text(layer.output_shape)
        assert label[0] == layer.name
        assert shape_text(layer.output_shape) in label
        if layer.kernel_size is not None:
            kind = "max pool" if layer.kind == "maxpool" else layer.kind
            assert f"{kind} {layer.kernel_size}{TIMES}{layer.kernel_size}" in label
            assert f"stride {layer.stride}, padding {layer.padding}" in label
            # The size rule drawn under the stage agrees with the shape torch produced.
            assert label[-1].endswith(f"= {layer.output_shape[1]}")


def test_shipped_network_svg_is_well_formed_and_lists_every_layer(card: ModelCard) -> None:
    check_lists_layers(card_svg(card), card.layers, card.input.shape)


def test_stacks_are_sized_by_output_shape(card: ModelCard) -> None:
    drawn = stages(parse(card_svg(card)))
    spatial = [layer for layer in card.layers if len(layer.output_shape) == 3]
    widths = {layer.name: float(front_sheet(drawn[layer.name]).get("width", "0")) for layer in spatial}
    # One scale for every stage: on-screen width over map width is the same everywhere.
    ratios = {round(widths[layer.name] / layer.output_shape[2], 6) for layer in spatial}
    assert len(ratios) == 1
    sheets = [len([r for r in drawn[layer.name].iter(f"{{{NS['svg']}}}rect")]) for layer in spatial]
    channels = [layer.output_shape[0] for layer in spatial]
    by_channels = [count for _, count in sorted(zip(channels, sheets, strict=True))]
    assert by_channels == sorted(by_channels)  # more channels never means a thinner stack
    assert max(sheets) > min(sheets) or len(set(channels)) == 1


def test_feature_stages_link_to_their_maps_and_head_ends_in_the_outputs(card: ModelCard) -> None:
    root = parse(card_svg(card))
    links = {a.get("href"): a for a in root.iter(f"{{{NS['svg']}}}a")}
    assert set(links) == {f"#features-{name}" for name in card.feature_layers}
    for name in card.feature_layers:
        assert next(g.get("data-layer") for g in links[f"#features-{name}"].iter(f"{{{NS['svg']}}}g")) == name
    outputs = [g for g in root.iter(f"{{{NS['svg']}}}g") if g.get("class") == "output"]
    assert [g.get("data-label") for g in outputs] == card.labels
    arrows = [line for line in root.iter(f"{{{NS['svg']}}}line") if line.get("class") == "arrow"]
    assert len(arrows) == len(card.layers) - 1  # between all stages but into the outputs, which get wires
    assert parse(card_svg(card, link_prefix="")).find(".//svg:a", NS) is None


def test_a_different_network_gets_a_different_correct_diagram(card: ModelCard) -> None:
    layers = describe_layers(SMALL_NETWORK)
    assert [layer.name for layer in layers] != [layer.name for layer in card.layers]
    svg = network_svg(layers, input_shape=card.input.shape, labels=card.labels)
    check_lists_layers(svg, layers, card.input.shape)
    drawn = stages(parse(svg))
    assert drawn["pool3"].get("data-shape") == shape_text([16, 3, 3])
    assert drawn["flatten"].get("data-shape") == "144"
    assert drawn["fc1"].get("data-shape") == "32"
    assert f"⌊(7{MINUS}2+2·0)/2⌋+1 = 3" in texts(drawn["pool3"])  # 7 does not halve: the rule floors
    assert svg != card_svg(card)


@pytest.mark.parametrize(
    ("n", "f", "p", "s", "kind"),
    [(28, 3, 1, 1, "conv"), (28, 5, 0, 1, "conv"), (28, 3, 1, 2, "conv"), (27, 4, 2, 3, "conv"),
     (28, 2, 0, 2, "maxpool"), (7, 2, 0, 2, "maxpool"), (15, 3, 1, 2, "maxpool")],
)  # fmt: skip
def test_size_rule_matches_torch(n: int, f: int, p: int, s: int, kind: str) -> None:
    x = torch.zeros(1, 1, n, n)
    if kind == "conv":
        out = F.conv2d(x, torch.zeros(1, 1, f, f), stride=s, padding=p)
    else:
        out = F.max_pool2d(x, f, stride=s, padding=p)
    layer = Layer(name="x", kind=kind, kernel_size=f, stride=s, padding=p, output_shape=[1, 1, 1], feature_map=True)  # type: ignore[arg-type]
    assert size_rule(n, layer)[1] == out.shape[-1]
