"""The benchmark's workloads and the HTTP requests that carry them to each kind of server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import orjson
from urllib3 import encode_multipart_formdata

from loadtest.samples import Sample

MULTIPART_BOUNDARY = "digits-benchmark-boundary"


class Workload(StrEnum):
    pixels = "pixels"
    png = "png"

    @property
    def description(self) -> str:
        return WORKLOAD_DESCRIPTIONS[self]


WORKLOAD_DESCRIPTIONS = {
    Workload.pixels: "one 28x28 `pixels` JSON request per call, `preprocess=none`",
    Workload.png: "one PNG upload (multipart) per call, `preprocess=auto`",
}


@dataclass(frozen=True)
class HttpRequest:
    """One request body, with where and how to send it; the label it should come back with."""

    method: str
    path: str
    content_type: str
    body: bytes
    label: int


def predict_requests(workload: Workload, samples: Sequence[Sample], path: str = "/v1/predict") -> list[HttpRequest]:
    """The digits API's own request for each sample (the gateway and the FastAPI peers speak it)."""
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
