"""What the protocol says about this server and its one model, read off the model card.

Inputs (exactly one per request): ``pixels``, FP32 or UINT8 ``[-1, 28, 28]`` or ``[-1, 1, 28, 28]``, values 0-255
in MNIST convention, not preprocessed; ``image``, BYTES ``[-1]``, encoded image files preprocessed like /v1's
``auto``. Outputs: ``probabilities``, ``label`` and the ``top_k_*`` pair, and every feature layer by its card name.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from model.card import ModelCard
from service.core.errors import ApiError, ErrorCode
from service.core.oip.tensors import BYTES
from service.core.preprocessing import FIELD, Mode

MODEL_NAME = "digits"
SERVER_NAME = "digits"
PLATFORM = "pytorch_torchscript"
EXTENSIONS = ("binary_tensor_data", "model_repository")

PIXELS = "pixels"
IMAGE = "image"
PROBABILITIES = "probabilities"
LABEL = "label"
TOP_K_LABELS = "top_k_labels"
TOP_K_PROBABILITIES = "top_k_probabilities"
DEFAULT_OUTPUTS = (PROBABILITIES, LABEL)
TOP_K_OUTPUTS = (TOP_K_LABELS, TOP_K_PROBABILITIES)
BATCH = -1


@dataclass(frozen=True)
class TensorSpec:
    """A tensor the model takes or gives: the metadata shows the first datatype and shape; any listed is accepted."""

    name: str
    datatypes: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    def metadata(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatypes[0], "shape": list(self.shapes[0])}

    def fits(self, shape: list[int]) -> bool:
        return any(
            len(allowed) == len(shape) and all(a in (BATCH, s) for a, s in zip(allowed, shape, strict=True))
            for allowed in self.shapes
        )

    def describe(self) -> str:
        shapes = " or ".join(str(list(shape)) for shape in self.shapes)
        return f"'{self.name}' ({' or '.join(self.datatypes)}, shape {shapes})"


@dataclass(frozen=True)
class InputSpec(TensorSpec):
    preprocess: Mode = "none"


INPUTS = {
    PIXELS: InputSpec(PIXELS, ("FP32", "UINT8"), ((BATCH, FIELD, FIELD), (BATCH, 1, FIELD, FIELD)), "none"),
    IMAGE: InputSpec(IMAGE, (BYTES,), ((BATCH,),), "auto"),
}


@dataclass(frozen=True)
class ServedModel:
    """The one model behind ``/v2/models/digits``: its name, its version and its tensors."""

    card: ModelCard

    @property
    def version(self) -> str:
        return self.card.version

    @cached_property
    def outputs(self) -> dict[str, TensorSpec]:
        classes = len(self.card.labels)
        specs = [
            TensorSpec(PROBABILITIES, ("FP32",), ((BATCH, classes),)),
            TensorSpec(LABEL, ("INT64",), ((BATCH,),)),
            TensorSpec(TOP_K_LABELS, ("INT64",), ((BATCH, BATCH),)),
            TensorSpec(TOP_K_PROBABILITIES, ("FP32",), ((BATCH, BATCH),)),
        ]
        specs += [
            TensorSpec(layer.name, ("FP32",), ((BATCH, *layer.output_shape),))
            for layer in self.card.layers
            if layer.feature_map
        ]
        return {spec.name: spec for spec in specs}

    def check(self, name: str, version: str | None) -> None:
        """Refuse a model name or version that is not this model's (``unknown_model``, 404)."""
        if name != MODEL_NAME:
            raise ApiError(ErrorCode.unknown_model, f"no model named '{name}'; this server serves '{MODEL_NAME}'")
        if version is not None and version != self.version:
            raise ApiError(
                ErrorCode.unknown_model, f"model '{name}' has no version '{version}'; it has '{self.version}'"
            )

    def metadata(self) -> dict[str, Any]:
        return {
            "name": MODEL_NAME,
            "versions": [self.version],
            "platform": PLATFORM,
            "inputs": [spec.metadata() for spec in INPUTS.values()],
            "outputs": [spec.metadata() for spec in self.outputs.values()],
        }


def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": server_version(), "extensions": list(EXTENSIONS)}


@cache
def server_version() -> str:
    """The installed digits package's version (the server's, not the model's)."""
    try:
        return importlib.metadata.version(SERVER_NAME)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"
