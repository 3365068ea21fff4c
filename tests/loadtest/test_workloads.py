"""The benchmark's request bodies, sent to a real gateway: each one comes back with its digit's label."""

from __future__ import annotations

import urllib.request

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
        sent = urllib.request.Request(
            gateway.url + request.path, data=request.body, method="POST", headers={"Content-Type": request.content_type}
        )
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
