"""From an inference request to the pipeline's inputs, and from the batch's output to the inference response.

The pipeline does the rest as for /v1: the same decoding, limits, pixel checks, preprocessing and batching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from service.core.errors import ApiError, ErrorCode, from_validation_errors
from service.core.oip.body import BINARY_DATA_SIZE, binary_sizes, join_body, split_binary, split_body
from service.core.oip.metadata import (
    DEFAULT_OUTPUTS,
    INPUTS,
    LABEL,
    MODEL_NAME,
    PIXELS,
    PROBABILITIES,
    TOP_K_LABELS,
    TOP_K_OUTPUTS,
    TOP_K_PROBABILITIES,
    InputSpec,
    ServedModel,
)
from service.core.oip.schemas import InferenceRequest, RequestInput
from service.core.oip.tensors import (
    bytes_from_binary,
    bytes_from_json,
    numeric_from_binary,
    numeric_from_json,
    to_binary,
    to_json,
)
from service.core.preprocessing import FIELD, check_pixels
from service.core.schemas import PredictOptions
from service.core.types import BatchOutput, Limits, RawInput

BINARY_DATA = "binary_data"
BINARY_DATA_OUTPUT = "binary_data_output"
TOP_K = "top_k"


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass(frozen=True)
class TensorCall:
    """What one inference request asks of the model: its inputs and options (a
    :class:`~service.core.inference.Call`), and the outputs to answer with."""

    request_id: str | None
    inputs: list[RawInput]
    options: PredictOptions  # preprocess, top_k, and the feature layers among the outputs
    outputs: list[RequestedOutput]


def read_inference(body: bytes, header_length: str | None, model: ServedModel, limits: Limits) -> TensorCall:
    """Parse and check an inference request (JSON, or JSON and binary tensors), refusing what the model cannot take."""
    if not body.strip():
        raise ApiError(ErrorCode.empty_body, "the request body is empty")
    header, binary = split_body(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc
    parts = split_binary(binary, binary_sizes([tensor.parameters for tensor in request.inputs]))
    return check_inference(request, parts, model, limits)


def check_inference(
    request: InferenceRequest, binary: Sequence[bytes | None], model: ServedModel, limits: Limits
) -> TensorCall:
    """The checks every transport of the protocol shares: one input the model takes (name, datatype, shape), binary
    data of the size its shape needs, the image count limit, known outputs and ``top_k``. ``binary``: each input's
    binary data, ``None`` where its data is in the request."""
    if len(request.inputs) != 1:
        raise ApiError(ErrorCode.invalid_tensor, f"give exactly one input, {' or '.join(map(_quoted, INPUTS))}")
    tensor, binary_part = request.inputs[0], binary[0]
    spec = _input_spec(tensor)
    limits.check_image_count(tensor.shape[0])
    if tensor.shape[0] == 0:
        raise ApiError(ErrorCode.invalid_tensor, f"input '{tensor.name}' holds no image (its batch size is 0)")
    outputs = _requested_outputs(request, model)
    layers = [name for name in model.card.feature_layers if any(o.name == name for o in outputs)]
    # Built from checked values: the layers are the model's own, top_k is checked by _top_k.
    options = PredictOptions.model_construct(preprocess=spec.preprocess, features=layers or None, top_k=_top_k(request))
    return TensorCall(request.id, _raw_inputs(tensor, binary_part, spec), options, outputs)


def _quoted(name: str) -> str:
    return f"'{name}'"


def _input_spec(tensor: RequestInput) -> InputSpec:
    spec = INPUTS.get(tensor.name)
    if spec is None:
        raise ApiError(
            ErrorCode.invalid_tensor,
            f"unknown input '{tensor.name}'; the model takes {' or '.join(s.describe() for s in INPUTS.values())}",
        )
    if tensor.datatype not in spec.datatypes:
        raise ApiError(
            ErrorCode.invalid_tensor,
            f"input '{tensor.name}' has datatype {tensor.datatype}; it takes {spec.describe()}",
        )
    if not spec.fits(tensor.shape):
        raise ApiError(
            ErrorCode.invalid_tensor, f"input '{tensor.name}' has shape {tensor.shape}; it takes {spec.describe()}"
        )
    return spec


def _raw_inputs(tensor: RequestInput, binary: bytes | None, spec: InputSpec) -> list[RawInput]:
    if (binary is None) == (tensor.data is None):
        raise ApiError(
            ErrorCode.invalid_tensor, f"input '{tensor.name}' needs exactly one of 'data' or a binary_data_size"
        )
    count = tensor.shape[0]
    if spec.name != PIXELS:
        return list(
            bytes_from_binary(binary, count, tensor.name)
            if binary is not None
            else bytes_from_json(tensor.data or [], count, tensor.name)
        )
    if binary is not None:
        values = numeric_from_binary(binary, tensor.datatype, tensor.shape, tensor.name)
    else:
        values = numeric_from_json(tensor.data or [], tensor.shape, tensor.name)
    images = values.reshape(count, FIELD, FIELD)
    for index, image in enumerate(images):
        check_pixels(image, index)
    return list(images)


def _requested_outputs(request: InferenceRequest, model: ServedModel) -> list[RequestedOutput]:
    everything_binary = request.parameters.get(BINARY_DATA_OUTPUT, False) is True
    if not request.outputs:
        names = DEFAULT_OUTPUTS + (TOP_K_OUTPUTS if TOP_K in request.parameters else ())
        return [RequestedOutput(name, everything_binary) for name in names]
    unknown = [output.name for output in request.outputs if output.name not in model.outputs]
    if unknown:
        raise ApiError(
            ErrorCode.unknown_output,
            f"unknown output(s) {', '.join(map(_quoted, unknown))}; the model has {', '.join(model.outputs)}",
        )
    return [
        RequestedOutput(output.name, output.parameters.get(BINARY_DATA, everything_binary) is True)
        for output in request.outputs
    ]


def _top_k(request: InferenceRequest) -> int:
    """The ``top_k`` parameter, checked as /v1 checks its option (1-10, ``invalid_top_k``)."""
    value = request.parameters.get(TOP_K)
    try:
        return PredictOptions.model_validate({} if value is None else {TOP_K: value}).top_k
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    values: np.ndarray
    binary: bool  # asked for as binary data (the REST transport's choice; gRPC always sends raw contents)


def output_tensors(call: TensorCall, output: BatchOutput, model: ServedModel) -> list[OutputTensor]:
    """The outputs ``call`` asked for, in its order, from ``output``, the batch's share that belongs to it."""
    ranked = np.argsort(-output.probabilities, axis=1, kind="stable")[:, : call.options.top_k]
    tensors = {
        PROBABILITIES: output.probabilities,
        LABEL: ranked[:, 0].astype(np.int64),
        TOP_K_LABELS: ranked.astype(np.int64),
        TOP_K_PROBABILITIES: np.take_along_axis(output.probabilities, ranked, axis=1),
        **output.features,
    }
    return [
        OutputTensor(
            requested.name, model.outputs[requested.name].datatypes[0], tensors[requested.name], requested.binary
        )
        for requested in call.outputs
    ]


@dataclass(frozen=True)
class Answer:
    body: bytes
    header_length: int | None  # the JSON header's length when binary outputs follow it


def write_inference(call: TensorCall, output: BatchOutput, model: ServedModel) -> Answer:
    """The inference response for ``output``, the batch's share that belongs to ``call``."""
    described: list[dict[str, Any]] = []
    binary: list[bytes] = []
    for tensor in output_tensors(call, output, model):
        described_tensor: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.values.shape),
        }
        if tensor.binary:
            data = to_binary(tensor.values, tensor.datatype)
            described_tensor["parameters"] = {BINARY_DATA_SIZE: len(data)}
            binary.append(data)
        else:
            described_tensor["data"] = to_json(tensor.values)
        described.append(described_tensor)
    header: dict[str, Any] = {"model_name": MODEL_NAME, "model_version": model.version, "outputs": described}
    if call.request_id is not None:
        header["id"] = call.request_id
    body, header_length = join_body(header, binary)
    return Answer(body, header_length)
