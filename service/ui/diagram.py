"""An SVG diagram of the served network, drawn from the model card's layer table.

Every convolution and pooling stage is a stack of feature maps whose sheets are sized by the
stage's output height and width and whose depth grows with its channel count; its label gives
the kind, kernel, stride, padding, output shape and the size rule (n - f + 2p)/s + 1 worked out
for it. The fully-connected head follows, ending in one node per output class. The SVG is built
as an element tree, so it is well-formed XML by construction.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from model.card import Layer, ModelCard

SVG_NS = "http://www.w3.org/2000/svg"

FONT_SIZE = 11
CHAR_WIDTH = FONT_SIZE * 0.62  # rough advance of one character, enough to keep labels apart
LINE_HEIGHT = 15
MARGIN = 20
ARROW_GAP = 36  # horizontal room between two stages, holding the arrow
MAX_MAP_PX = 96  # on-screen side of the largest feature map
SHEET_OFFSET = 4  # pixels between two sheets of a stack
MAX_SHEETS = 12
CHANNELS_PER_SHEET = 4
NEURON_RADIUS = 5
MAX_NEURONS_DRAWN = 8
OUTPUT_RADIUS = 7
OUTPUT_PITCH = 20

COLORS = {
    "input": ("#f1f3f5", "#495057"),
    "conv": ("#dbe4ff", "#3b5bdb"),
    "maxpool": ("#fff3bf", "#e67700"),
    "flatten": ("#e9ecef", "#495057"),
    "linear": ("#d3f9d8", "#2b8a3e"),
}
TIMES, MINUS = "\u00d7", "\u2212"  # typeset, not the ASCII look-alikes
LEGEND = (
    f"Each stack is one stage's output, C feature maps of H{TIMES}W; "
    f"its size is (n {MINUS} f + 2p)/s + 1 for input size n, filter f, padding p, stride s."
)
KIND_NAMES = {"conv": "conv", "maxpool": "max pool", "flatten": "flatten", "linear": "linear"}


def shape_text(shape: Sequence[int]) -> str:
    """A shape the way labels write it: dimensions joined by a multiplication sign."""
    return TIMES.join(str(d) for d in shape)


def size_rule(n: int, layer: Layer) -> tuple[str, int]:
    """The output size formula filled in for one spatial stage, and its value."""
    f, p, s = layer.kernel_size or 1, layer.padding or 0, layer.stride or 1
    numerator = n - f + 2 * p
    out = numerator // s + 1
    text = f"({n}{MINUS}{f}+2·{p})/{s}+1 = {out}"
    if numerator % s:
        text = f"⌊({n}{MINUS}{f}+2·{p})/{s}⌋+1 = {out}"
    return text, out


def stage_lines(layer: Layer, n_in: int | None) -> list[str]:
    """The label of a layer, one string per line."""
    lines = [layer.name]
    if layer.kernel_size is not None:
        k = layer.kernel_size
        lines.append(f"{KIND_NAMES[layer.kind]} {k}{TIMES}{k}")
        lines.append(f"stride {layer.stride}, padding {layer.padding}")
    elif layer.name != layer.kind:
        lines.append(KIND_NAMES[layer.kind])
    lines.append(shape_text(layer.output_shape))
    if layer.kernel_size is not None and n_in is not None:
        lines.append(size_rule(n_in, layer)[0])
    return lines


def text_width(lines: Sequence[str]) -> float:
    return max((len(line) for line in lines), default=0) * CHAR_WIDTH


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Stack:
    """How one ``[C, H, W]`` output is drawn: sheet size and how many sheets, how far apart."""

    width: float
    height: float
    sheets: int

    @classmethod
    def of(cls, shape: Sequence[int], scale: float) -> Stack:
        channels, height, width = shape
        sheets = 1 if channels == 1 else min(MAX_SHEETS, max(2, math.ceil(channels / CHANNELS_PER_SHEET)))
        return cls(width=max(width * scale, 4.0), height=max(height * scale, 4.0), sheets=sheets)

    @property
    def depth(self) -> float:
        return (self.sheets - 1) * SHEET_OFFSET

    @property
    def box_width(self) -> float:
        return self.width + self.depth

    @property
    def box_height(self) -> float:
        return self.height + self.depth


class DiagramBuilder:
    """Lays stages out left to right on one centre line and writes them into an ``<svg>`` tree."""

    def __init__(
        self, layers: Sequence[Layer], input_shape: Sequence[int], labels: Sequence[str], link_prefix: str
    ) -> None:
        self.layers = list(layers)
        self.input_shape = list(input_shape)
        self.labels = list(labels)
        self.link_prefix = link_prefix
        spatial = [self.input_shape, *(layer.output_shape for layer in self.layers if len(layer.output_shape) == 3)]
        self.scale = min(3.0, MAX_MAP_PX / max(max(shape[1], shape[2]) for shape in spatial))
        tallest_stack = max(Stack.of(shape, self.scale).box_height for shape in spatial)
        outputs = self.layers[-1].output_shape[0] if self.layers else 0
        self.body_height = max(tallest_stack, outputs * OUTPUT_PITCH, MAX_NEURONS_DRAWN * 3 * NEURON_RADIUS)
        self.center_y = MARGIN + self.body_height / 2
        self.label_y = MARGIN + self.body_height + 22
        self.label_lines = 1  # the most label lines under any stage
        self.root = ET.Element("svg", {"xmlns": SVG_NS, "class": "network-diagram", "font-size": str(FONT_SIZE)})
        self.root.set("font-family", "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif")

    def build(self) -> ET.Element:
        title = ET.SubElement(self.root, "title")
        title.text = "Network diagram: " + " → ".join(["input", *(layer.name for layer in self.layers)])
        self._arrow_marker()
        x = float(MARGIN)
        x = self._spatial_stage(x, None, self.input_shape, ["input", shape_text(self.input_shape)])
        n = self.input_shape[1]
        previous_neurons: list[tuple[float, float]] | None = None
        for index, layer in enumerate(self.layers):
            is_output = index == len(self.layers) - 1 and len(layer.output_shape) == 1
            # Wires, not an arrow, lead from the last hidden layer into the outputs.
            x = x + ARROW_GAP if is_output and previous_neurons else self._arrow(x)
            if len(layer.output_shape) == 3:
                x = self._spatial_stage(x, layer, layer.output_shape, stage_lines(layer, n))
                n = layer.output_shape[1]
            elif layer.kind == "flatten":
                x = self._flatten_stage(x, layer)
            elif is_output:
                x = self._output_stage(x, layer, previous_neurons)
            else:
                x, previous_neurons = self._dense_stage(x, layer)
        legend_y = self.label_y + (self.label_lines - 1) * LINE_HEIGHT + 2 * LINE_HEIGHT
        legend = ET.SubElement(self.root, "text", {"class": "diagram-legend", "x": str(MARGIN), "y": _fmt(legend_y),
                                                   "fill": "#495057"})  # fmt: skip
        legend.text = LEGEND
        width = max(x, MARGIN + len(LEGEND) * CHAR_WIDTH) + MARGIN
        height = legend_y + MARGIN
        self.root.set("width", _fmt(width))
        self.root.set("height", _fmt(height))
        self.root.set("viewBox", f"0 0 {_fmt(width)} {_fmt(height)}")
        return self.root

    def _arrow_marker(self) -> None:
        defs = ET.SubElement(self.root, "defs")
        marker = ET.SubElement(
            defs,
            "marker",
            {"id": "arrowhead", "viewBox": "0 0 10 10", "refX": "9", "refY": "5", "markerWidth": "7",
             "markerHeight": "7", "orient": "auto-start-reverse"},
        )  # fmt: skip
        ET.SubElement(marker, "path", {"d": "M 0 0 L 10 5 L 0 10 z", "fill": "#495057"})

    def _arrow(self, x: float) -> float:
        y = _fmt(self.center_y)
        ET.SubElement(
            self.root,
            "line",
            {"class": "arrow", "x1": _fmt(x + 6), "y1": y, "x2": _fmt(x + ARROW_GAP - 6), "y2": y,
             "stroke": "#495057", "stroke-width": "1.5", "marker-end": "url(#arrowhead)"},
        )  # fmt: skip
        return x + ARROW_GAP

    def _stage_group(self, layer: Layer | None, kind: str, shape: Sequence[int], lines: Sequence[str]) -> ET.Element:
        """The ``<g>`` of one stage, inside a link to its feature maps when the page has them."""
        parent = self.root
        name = layer.name if layer else "input"
        if layer is not None and layer.feature_map and self.link_prefix:
            parent = ET.SubElement(self.root, "a", {"href": f"{self.link_prefix}{layer.name}", "class": "stage-link"})
        group = ET.SubElement(
            parent,
            "g",
            {"class": f"stage stage-{kind}", "id": f"stage-{name}", "data-layer": name, "data-kind": kind,
             "data-shape": shape_text(shape)},
        )  # fmt: skip
        tooltip = ET.SubElement(group, "title")
        tooltip.text = ", ".join(lines)
        return group

    def _labels(self, group: ET.Element, center_x: float, lines: Sequence[str]) -> None:
        self.label_lines = max(self.label_lines, len(lines))
        for i, line in enumerate(lines):
            attrs = {"x": _fmt(center_x), "y": _fmt(self.label_y + i * LINE_HEIGHT), "text-anchor": "middle"}
            attrs["class"] = "stage-name" if i == 0 else "stage-label"
            if i == 0:
                attrs["font-weight"] = "600"
            attrs["fill"] = "#212529" if i == 0 else "#495057"
            ET.SubElement(group, "text", attrs).text = line

    def _spatial_stage(self, x: float, layer: Layer | None, shape: Sequence[int], lines: Sequence[str]) -> float:
        kind = layer.kind if layer else "input"
        fill, stroke = COLORS[kind]
        stack = Stack.of(shape, self.scale)
        column = max(stack.box_width, text_width(lines))
        left = x + (column - stack.box_width) / 2
        top = self.center_y - stack.box_height / 2
        group = self._stage_group(layer, kind, shape, lines)
        # Back sheets first, each one up and to the right of the one before it.
        for sheet in range(stack.sheets - 1, -1, -1):
            offset = sheet * SHEET_OFFSET
            ET.SubElement(
                group,
                "rect",
                {"class": "sheet", "x": _fmt(left + offset), "y": _fmt(top + stack.depth - offset),
                 "width": _fmt(stack.width), "height": _fmt(stack.height), "fill": fill, "stroke": stroke,
                 "stroke-width": "1", "rx": "1"},
            )  # fmt: skip
        self._labels(group, x + column / 2, lines)
        return x + column

    def _flatten_stage(self, x: float, layer: Layer) -> float:
        fill, stroke = COLORS["flatten"]
        lines = stage_lines(layer, None)
        column = max(12.0, text_width(lines))
        group = self._stage_group(layer, "flatten", layer.output_shape, lines)
        height = self.body_height * 0.9
        ET.SubElement(
            group,
            "rect",
            {"x": _fmt(x + column / 2 - 6), "y": _fmt(self.center_y - height / 2), "width": "12",
             "height": _fmt(height), "fill": fill, "stroke": stroke, "rx": "2"},
        )  # fmt: skip
        self._labels(group, x + column / 2, lines)
        return x + column

    def _neuron_column(self, count: int, pitch: float) -> list[float]:
        top = self.center_y - (count - 1) * pitch / 2
        return [top + i * pitch for i in range(count)]

    def _dense_stage(self, x: float, layer: Layer) -> tuple[float, list[tuple[float, float]]]:
        fill, stroke = COLORS["linear"]
        lines = stage_lines(layer, None)
        column = max(2 * NEURON_RADIUS + 4, text_width(lines))
        group = self._stage_group(layer, "linear", layer.output_shape, lines)
        units = layer.output_shape[0]
        drawn = min(units, MAX_NEURONS_DRAWN)
        cx = x + column / 2
        ys = self._neuron_column(drawn + (1 if units > drawn else 0), 3 * NEURON_RADIUS)
        centers = [(cx, y) for y in ys[:drawn]]
        for y in ys[:drawn]:
            ET.SubElement(group, "circle", {"cx": _fmt(cx), "cy": _fmt(y), "r": str(NEURON_RADIUS), "fill": fill,
                                            "stroke": stroke})  # fmt: skip
        if units > drawn:  # the rest of the units, elided
            ET.SubElement(group, "text", {"x": _fmt(cx), "y": _fmt(ys[-1] + 4), "text-anchor": "middle",
                                          "fill": stroke}).text = "⋮"  # fmt: skip
        self._labels(group, cx, lines)
        return x + column, centers

    def _output_stage(self, x: float, layer: Layer, inputs: list[tuple[float, float]] | None) -> float:
        fill, stroke = COLORS["linear"]
        lines = stage_lines(layer, None)
        label_room = 4 + max((len(label) for label in self.labels), default=1) * CHAR_WIDTH
        column = max(2 * OUTPUT_RADIUS + 2 * label_room, text_width(lines))
        cx = x + column / 2
        group = self._stage_group(layer, "output", layer.output_shape, lines)
        outputs = layer.output_shape[0]
        ys = self._neuron_column(outputs, OUTPUT_PITCH)
        if inputs:  # fully connected: every unit of the layer before feeds every output
            wires = ET.SubElement(group, "g", {"class": "wires", "stroke": "#adb5bd", "stroke-width": "0.5"})
            for ix, iy in inputs:
                for y in ys:
                    ET.SubElement(wires, "line", {"x1": _fmt(ix + NEURON_RADIUS), "y1": _fmt(iy),
                                                  "x2": _fmt(cx - OUTPUT_RADIUS), "y2": _fmt(y)})  # fmt: skip
        for i, y in enumerate(ys):
            label = self.labels[i] if i < len(self.labels) else str(i)
            node = ET.SubElement(group, "g", {"class": "output", "id": f"output-{label}", "data-label": label})
            ET.SubElement(node, "circle", {"cx": _fmt(cx), "cy": _fmt(y), "r": str(OUTPUT_RADIUS), "fill": fill,
                                           "stroke": stroke})  # fmt: skip
            ET.SubElement(node, "text", {"x": _fmt(cx + OUTPUT_RADIUS + 4), "y": _fmt(y + 4),
                                         "fill": "#212529"}).text = label  # fmt: skip
        self._labels(group, cx, lines)
        return x + column


def network_svg(
    layers: Sequence[Layer],
    *,
    input_shape: Sequence[int] = (1, 28, 28),
    labels: Sequence[str] = tuple("0123456789"),
    link_prefix: str = "#features-",
) -> bytes:
    """The diagram as UTF-8 SVG; stages with feature maps link to ``link_prefix + name`` ("" for no links)."""
    root = DiagramBuilder(layers, input_shape, labels, link_prefix).build()
    svg: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return svg


def card_svg(card: ModelCard, link_prefix: str = "#features-") -> bytes:
    """The diagram of the network a model card describes."""
    return network_svg(card.layers, input_shape=card.input.shape, labels=card.labels, link_prefix=link_prefix)
