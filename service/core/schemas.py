"""Request and response bodies of the predict API."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from service.core.preprocessing import pixel_rows
from service.core.types import RawInput

# A "1": a vertical stroke, ink bright on black, as preprocess=none expects.
EXAMPLE_PIXELS: list[JsonValue] = [[255 if 4 <= r < 24 and 13 <= c < 16 else 0 for c in range(28)] for r in range(28)]


class PredictOptions(BaseModel):
    """Options of a prediction: query parameters for multipart, body fields for JSON."""

    model_config = ConfigDict(extra="forbid")

    preprocess: Literal["auto", "none"] = Field(
        "auto",
        description="auto: turn any photo or scan into an MNIST-style digit; "
        "none: the input is already 28x28, ink bright on black, values 0-255",
    )
    features: list[str] | None = Field(
        None, description='layer names from the model card whose feature maps to return, or ["all"]'
    )
    feature_format: Literal["array", "png"] = Field(
        "array", description="array: base64 little-endian float32 with shape; png: channels tiled in a grid"
    )
    top_k: int = Field(3, ge=1, le=10, description="how many of the most likely labels to list")
    explain: list[Literal["input", "saliency", "preprocessing"]] | None = Field(
        None,
        description="input: the 28x28 field the model received (0-255, ink bright, before normalization), in "
        "feature_format; saliency: gradient x input of the predicted class's logit per pixel, 28x28, in "
        "feature_format; preprocessing (preprocess auto only): the image after each preprocessing step, as PNGs",
    )
    saliency_label: int | None = Field(
        None, ge=0, le=9, description="with explain saliency: the class to explain instead of the predicted one"
    )

    @model_validator(mode="after")
    def _explain_parts_fit(self) -> PredictOptions:
        if self.explain and "preprocessing" in self.explain and self.preprocess != "auto":
            raise ValueError("explain preprocessing shows the steps of preprocess auto; this request has none")
        if self.saliency_label is not None and not (self.explain and "saliency" in self.explain):
            raise ValueError("saliency_label chooses the class of explain saliency; this request does not ask for it")
        return self


# A 2-D array of gray values: JSON rows of numbers on the wire, a float32 array once validated.
PixelRows = Annotated[
    np.ndarray,
    PlainValidator(pixel_rows),
    PlainSerializer(lambda values: values.tolist()),
    WithJsonSchema({"type": "array", "items": {"type": "array", "items": {"type": "number"}}}),
]


class Instance(BaseModel):
    """One input: an encoded image file (base64) or a 2-D array of gray values 0-255."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, description="base64 of an image file (PNG, JPEG, BMP, GIF, WebP, TIFF)")
    pixels: PixelRows | None = Field(None, description="2-D grayscale array, values 0-255")

    @model_validator(mode="after")
    def _exactly_one(self) -> Instance:
        if (self.image is None) == (self.pixels is None):
            raise ValueError("give exactly one of 'image' or 'pixels'")
        return self

    @property
    def raw(self) -> RawInput:
        """What the pipeline decodes: the image's base64 text, or the gray values."""
        if self.image is not None:
            return self.image
        assert self.pixels is not None  # exactly one of them, as validated
        return self.pixels


class PredictRequest(PredictOptions):
    instances: Annotated[list[Instance], Field(min_length=1)]

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"instances": [{"pixels": EXAMPLE_PIXELS}], "preprocess": "none", "top_k": 3}]},
    )


class ModelRef(BaseModel):
    name: str
    version: str


class TopK(BaseModel):
    label: int
    probability: float


class FeatureMap(BaseModel):
    """One layer's feature maps: raw float32 (format array) or a tiled PNG (format png)."""

    format: Literal["array", "png"]
    shape: list[int] = Field(description="[channels, height, width]")
    dtype: str | None = Field(None, description="array only: always float32, little-endian")
    data: str = Field(description="base64 of the float32 bytes (array) or of the PNG file (png)")
    grid: dict[str, int] | None = Field(None, description="png only: rows and cols of the channel grid")


class EncodedArray(BaseModel):
    """An array: raw float32 (format array) or an 8-bit grayscale PNG (format png)."""

    format: Literal["array", "png"]
    shape: list[int]
    dtype: str | None = Field(None, description="array only: always float32, little-endian")
    data: str = Field(description="base64 of the float32 bytes, row-major (array) or of the PNG file (png)")
    grid: dict[str, int] | None = Field(None, description="png of several tiles only: rows, cols, tile size, gap")


class Saliency(EncodedArray):
    """[28, 28], in logit units; as PNG mid-gray is 0 and white/black the largest magnitude for/against the class."""

    label: int = Field(description="the class explained: the predicted label, or the request's saliency_label")
    method: str


class PreprocessingStage(BaseModel):
    stage: Literal["grayscale", "polarity", "cropped", "scaled", "centred"]
    shape: list[int] = Field(description="[height, width] of the image at this stage")
    data: str = Field(description="base64 of a grayscale PNG of it, at most 112 pixels on its longer side")


class Explanation(BaseModel):
    """Only the parts the request's explain option asked for."""

    input: EncodedArray | None = Field(
        None, description="[28, 28]: the MNIST field the model received, 0-255 ink bright, before normalization"
    )
    saliency: Saliency | None = None
    preprocessing: list[PreprocessingStage] | None = Field(
        None, description="grayscale, polarity (ink bright), cropped to the ink, scaled to 20 px, centred by mass"
    )


class Prediction(BaseModel):
    label: int
    confidence: float
    probabilities: list[float] = Field(min_length=10, max_length=10)
    top_k: list[TopK]
    features: dict[str, FeatureMap] | None = None
    explain: Explanation | None = None


class PredictResponse(BaseModel):
    model: ModelRef
    predictions: list[Prediction]


class LayerResponse(BaseModel):
    """A layer of the model card; for a convolution, the weights the served model computes with."""

    name: str
    kind: Literal["conv", "maxpool", "flatten", "linear"]
    kernel_size: int | None = None
    stride: int | None = None
    padding: int | None = None
    output_shape: list[int]
    batch_norm: str | None = Field(None, description="conv only: how batch norm is in weight and bias (folded)")
    weight: EncodedArray | None = Field(
        None, description="conv only: [out, in, k, k]; as png a row of kernels per output channel, 0 mid-gray"
    )
    bias: EncodedArray | None = Field(None, description="conv only: [out], always an array")


class ErrorDetail(BaseModel):
    code: str
    message: str
    index: int | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
