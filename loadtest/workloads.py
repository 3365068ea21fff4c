"""The benchmark's workloads and the HTTP requests that carry them to each kind of server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import orjson
from urllib3 import encode_multipart_formdata

from loadtest.samples import Sample
from service.core.oip.body import BINARY_DATA_SIZE, HEADER_LENGTH, join_body
from service.core.preprocessing import Mode

MULTIPART_BOUNDARY = "digits-benchmark-boundary"
OIP_INFER_PATH = "/v2/models/digits/infer"


class Workload(StrEnum):
    pixels = "pixels"
    png = "png"
    oip = "oip"

    @property
    def description(self) -> str:
        return WORKLOAD_DESCRIPTIONS[self]

    @property
    def preprocess(self) -> Mode:
        """How the server prepares the workload's input: 28x28 pixels as they are, image files the MNIST way."""
        return "auto" if self is Workload.png else "none"


WORKLOAD_DESCRIPTIONS = {
    Workload.pixels: "one 28x28 `pixels` JSON request per call, `preprocess=none`",
    Workload.png: "one PNG upload (multipart) per call, `preprocess=auto`",
    Workload.oip: "one Open Inference Protocol request per call (`/v2`): binary FP32 `[1,28,28]` pixels in, "
    "JSON probabilities and label out",
}
# The benchmark's default: the /v1 workloads; `--workloads` adds oip.
DEFAULT_WORKLOADS = (Workload.pixels, Workload.png)


@dataclass(frozen=True)
class HttpRequest:
    """One request body, with where and how to send it; the label it should come back with."""

    method: str
    path: str
    content_type: str
    body: bytes
    label: int
    headers: tuple[tuple[str, str], ...] = ()  # besides Content-Type


def predict_requests(workload: Workload, samples: Sequence[Sample], path: str = "/v1/predict") -> list[HttpRequest]:
    """The digits API's own request for each sample (the gateway and the FastAPI peers speak /v1)."""
    if workload is Workload.oip:
        return [oip_request(sample) for sample in samples]
    requests = []
    for sample in samples:
        if workload is Workload.pixels:
            body = orjson.dumps({"instances": [{"pixels": sample.pixels}], "preprocess": "none"})
            requests.append(HttpRequest("POST", path, "application/json", body, sample.label))
        else:
            body, content_type = encode_multipart_formdata(
                {"file": (sample.name, sample.png, "image/png")}, boundary=MULTIPART_BOUNDARY
            )
            requests.append(HttpRequest("POST", f"{path}?preprocess=auto", content_type, body, sample.label))
    return requests


def oip_request(sample: Sample) -> HttpRequest:
    """The sample as an inference request with one binary FP32 ``[1, 28, 28]`` input (binary tensor extension)."""
    pixels = np.asarray(sample.pixels, dtype="<f4").tobytes()
    header = {
        "inputs": [
            {"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28], "parameters": {BINARY_DATA_SIZE: len(pixels)}}
        ]
    }
    body, header_length = join_body(header, [pixels])
    headers = ((HEADER_LENGTH, str(header_length)),)
    return HttpRequest("POST", OIP_INFER_PATH, "application/octet-stream", body, sample.label, headers)
