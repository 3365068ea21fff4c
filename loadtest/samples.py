"""The MNIST test digits shipped in ``loadtest/samples/``: PNG scans and their known labels.

Each sample is a digit from the MNIST test split, drawn as dark ink on white paper and
scaled to one of several sizes, the way a user's scan or photo would arrive. Its 28x28
MNIST-convention pixels (ink bright on black) are derived from the PNG by scaling it
back down, so one file serves both the upload and the ``pixels`` requests.
``labels.json`` lists every file with its label; ``python -m loadtest.make_samples``
writes both.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
MANIFEST_NAME = "labels.json"
FIELD = 28


class SampleEntry(BaseModel):
    file: str = Field(description="PNG file name in the samples folder")
    label: int = Field(ge=0, le=9, description="the digit, from the MNIST test labels")
    mnist_index: int = Field(ge=0, description="position in the MNIST test split")
    width: int = Field(ge=FIELD)
    height: int = Field(ge=FIELD)


class Manifest(BaseModel):
    source: str
    description: str
    samples: list[SampleEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Sample:
    name: str
    label: int
    png: bytes = field(repr=False)

    @cached_property
    def png_base64(self) -> str:
        return base64.b64encode(self.png).decode("ascii")

    @cached_property
    def pixels(self) -> list[list[int]]:
        """28x28 gray values 0-255, ink bright on black: a valid ``preprocess=none`` input."""
        with Image.open(io.BytesIO(self.png)) as image:
            small = image.convert("L").resize((FIELD, FIELD), Image.Resampling.BOX)
        values: list[list[int]] = (255 - np.asarray(small, dtype=np.int16)).tolist()
        return values


def read_manifest(directory: Path = SAMPLES_DIR) -> Manifest:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; run `python -m loadtest.make_samples` to write the samples")
    return Manifest.model_validate_json(path.read_bytes())


def load_samples(directory: Path = SAMPLES_DIR) -> list[Sample]:
    """Every sample listed in the manifest, with its PNG bytes."""
    manifest = read_manifest(directory)
    return [Sample(entry.file, entry.label, (directory / entry.file).read_bytes()) for entry in manifest.samples]
