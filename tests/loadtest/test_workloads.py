"""The benchmark's request bodies, sent to a real gateway: each one comes back with its digit's label."""

from __future__ import annotations

import urllib.request

import numpy as np
import orjson
import pytest

from loadtest.checks import prediction_problem
from loadtest.samples import load_samples
from loadtest.workloads import MULTIPART_BOUNDARY, Workload, predict_requests
from tests.servers import ServerProcess


@pytest.mark.parametrize("workload", list(Workload))
def test_every_request_is_answered_with_its_label(gateway: ServerProcess, workload: Workload) -> None:
    requests = predict_requests(workload, load_samples())
    assert len({request.content_type for request in requests}) == 1
    for request in requests:
        headers = {"Content-Type": request.content_type, **dict(request.headers)}
        sent = urllib.request.Request(gateway.url + request.path, data=request.body, method="POST", headers=headers)
        with urllib.request.urlopen(sent, timeout=30) as response:
            assert prediction_problem(response.status, response.read(), [request.label]) is None, request.path


def test_the_workloads_are_the_issue_3_requests() -> None:
    sample = load_samples()[0]
    pixels = predict_requests(Workload.pixels, [sample])[0]
    assert pixels.content_type == "application/json"
    assert b'"preprocess":"none"' in pixels.body
    png = predict_requests(Workload.png, [sample])[0]
    assert png.path == "/v1/predict?preprocess=auto"
    assert png.content_type == f"multipart/form-data; boundary={MULTIPART_BOUNDARY}"
    assert sample.png in png.body


def test_the_oip_workload_is_one_binary_fp32_tensor() -> None:
    sample = load_samples()[0]
    request = predict_requests(Workload.oip, [sample])[0]
    assert request.path == "/v2/models/digits/infer" and request.content_type == "application/octet-stream"
    ((name, length),) = request.headers
    header, binary = request.body[: int(length)], request.body[int(length) :]
    assert name == "Inference-Header-Content-Length"
    assert orjson.loads(header)["inputs"] == [
        {"name": "pixels", "datatype": "FP32", "shape": [1, 28, 28], "parameters": {"binary_data_size": 3136}}
    ]
    assert np.frombuffer(binary, "<f4").reshape(28, 28).tolist() == sample.pixels
