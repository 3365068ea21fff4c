"""The labelled digits that ship with the load tests, as requests the tests send."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.deploy.stack import ROOT

SAMPLES_DIR = ROOT / "loadtest" / "samples"


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


def samples() -> list[Sample]:
    index = json.loads((SAMPLES_DIR / "labels.json").read_text())
    return [Sample(SAMPLES_DIR / item["file"], int(item["label"])) for item in index["samples"]]


def predict_png(base_url: str, sample: Sample, **params: str) -> dict[str, object]:
    """POST the sample as a multipart upload; the parsed 200 body."""
    response = httpx.post(
        f"{base_url}/v1/predict",
        params=params,
        files={"file": (sample.path.name, sample.path.read_bytes(), "image/png")},
        timeout=30,
    )
    assert response.status_code == 200, (response.status_code, response.text[:500])
    body: dict[str, object] = response.json()
    return body
