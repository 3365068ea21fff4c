"""Between the protocol's gRPC messages and its framework-free objects (service.core.oip), which do every check."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from service.core.errors import ApiError, ErrorCode, from_validation_errors
from service.core.oip.inference import OutputTensor, TensorCall
from service.core.oip.metadata import MODEL_NAME
from service.core.oip.schemas import InferenceRequest, Parameter, Parameters
from service.core.oip.tensors import BYTES, LENGTH_PREFIX_BYTES, to_binary
from service.grpc.generated import predict_v2_pb2 as pb


def inference_request(message: pb.ModelInferRequest) -> tuple[InferenceRequest, list[bytes | None]]:
    """The request as the protocol's object, and each input's raw contents (``None`` where ``contents`` held it)."""
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise ApiError(
            ErrorCode.invalid_binary_data,
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs; give one per input",
        )
    inputs: list[dict[str, Any]] = []
    binary: list[bytes | None] = []
    for index, tensor in enumerate(message.inputs):
        data, part = (None, raw[index]) if raw else _contents(tensor)
        inputs.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": parameters(tensor.parameters),
                "data": data,
            }
        )
        binary.append(part)
    outputs = [{"name": output.name, "parameters": parameters(output.parameters)} for output in message.outputs]
    document = {
        "id": message.id or None,
        "parameters": parameters(message.parameters),
        "inputs": inputs,
        "outputs": outputs or None,
    }
    try:
        return InferenceRequest.model_validate(document), binary
    except ValidationError as exc:
        raise from_validation_errors(list(exc.errors())) from exc


def _contents(tensor: pb.ModelInferRequest.InferInputTensor) -> tuple[list[Any] | None, bytes | None]:
    """A tensor's typed ``contents``: numbers as the protocol's JSON data, BYTES elements as its binary layout."""
    contents = tensor.contents
    if tensor.datatype == BYTES:
        return None, b"".join(
            len(element).to_bytes(LENGTH_PREFIX_BYTES, "little") + element for element in contents.bytes_contents
        )
    numbers: Iterable[float | int] = (
        contents.fp32_contents
        or contents.uint_contents
        or contents.int_contents
        or contents.int64_contents
        or contents.uint64_contents
        or contents.fp64_contents
    )
    return list(numbers), None


def parameters(given: Mapping[str, pb.InferParameter]) -> Parameters:
    found: Parameters = {}
    for name, parameter in given.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:
            value: Parameter = getattr(parameter, choice)
            found[name] = value
    return found


def infer_response(call: TensorCall, tensors: Iterable[OutputTensor], version: str) -> pb.ModelInferResponse:
    """Every output as raw contents (the protocol allows no mix of raw and typed outputs in one response)."""
    response = pb.ModelInferResponse(model_name=MODEL_NAME, model_version=version, id=call.request_id or "")
    for tensor in tensors:
        response.outputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.values.shape)
        response.raw_output_contents.append(to_binary(tensor.values, tensor.datatype))
    return response


def model_metadata(metadata: Mapping[str, Any]) -> pb.ModelMetadataResponse:
    response = pb.ModelMetadataResponse(
        name=metadata["name"], versions=metadata["versions"], platform=metadata["platform"]
    )
    for field in ("inputs", "outputs"):
        for tensor in metadata[field]:
            getattr(response, field).add(name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"])
    return response
