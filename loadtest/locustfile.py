"""Locust users of the digits API; every answer is checked against the known digit.

    locust -f loadtest/locustfile.py --host http://127.0.0.1:8000      (or: digits loadtest)

Four kinds of user, mixed by weight 2:2:1:1 (so six users run one of each kind at least):
a scan upload (multipart PNG, ``preprocess=auto``), a 28x28 ``pixels`` JSON request
(``preprocess=none``), a batch of 16 base64 PNGs, and a request for every layer's feature
maps. The digits are the MNIST test samples shipped in ``loadtest/samples/``. A wrong label,
a missing feature map or a non-200 status is marked as a failure, so Locust's failure count
means wrong answers as well as errors.
``--think-time S`` makes each user wait up to S seconds (uniform) between requests.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
from locust import FastHttpUser, User, events, task
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtest.checks import prediction_problem
from loadtest.samples import Sample, load_samples

SAMPLES = load_samples()
PREDICT = "/v1/predict"
BATCH_SIZE = 16


def _add_options(parser: Any) -> None:
    parser.add_argument(
        "--think-time", type=float, default=0.0, help="each user waits up to this many seconds between requests"
    )
    parser.add_argument("--summary-file", default="", help="write the final totals and failures here as JSON")


def _write_summary(environment: Environment, **_: Any) -> None:
    """Locust's own final numbers (its CSV files lag by up to a second), for ``digits loadtest`` to judge."""
    path = getattr(environment.parsed_options, "summary_file", "")
    if not path or isinstance(environment.runner, WorkerRunner):
        return
    total = environment.stats.total
    summary = {
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rps": total.total_rps,
        **{f"p{round(q * 100)}_ms": total.get_response_time_percentile(q) for q in (0.5, 0.95, 0.99)},
        "failure_lines": [f"{e.occurrences} x {e.to_name()}" for e in environment.stats.errors.values()],
    }
    Path(path).write_bytes(orjson.dumps(summary))


events.init_command_line_parser.add_listener(_add_options)
events.test_stop.add_listener(_write_summary)


def think_time(user: User) -> float:
    options = user.environment.parsed_options
    limit = float(getattr(options, "think_time", 0.0) or 0.0) if options is not None else 0.0
    return random.uniform(0.0, limit)


class DigitsUser(FastHttpUser):
    abstract = True
    wait_time = think_time

    def predict(self, name: str, expected: list[int], *, layers: list[str] | None = None, **kwargs: Any) -> None:
        """POST to /v1/predict and mark the request failed unless every label is ``expected``."""
        with self.client.post(PREDICT, name=name, catch_response=True, **kwargs) as response:
            if response.status_code == 0:  # no HTTP answer at all: say why
                response.failure(f"connection error: {response.error!r}")
                return
            problem = prediction_problem(response.status_code, response.content, expected, layers or ())
            if problem is None:
                response.success()
            else:
                response.failure(problem)


class ScanUploadUser(DigitsUser):
    """Uploads one scanned digit as a multipart PNG, the way a web form does."""

    weight = 2

    @task
    def upload_png(self) -> None:
        sample = random.choice(SAMPLES)
        self.predict(
            "upload png",
            [sample.label],
            params={"preprocess": "auto"},
            files={"file": (sample.name, sample.png, "image/png")},
        )


class PixelsUser(DigitsUser):
    """Sends 28x28 MNIST-style pixels as JSON, the way a canvas app or a pipeline does."""

    weight = 2

    @task
    def predict_pixels(self) -> None:
        sample = random.choice(SAMPLES)
        self.predict(
            "json pixels", [sample.label], json={"instances": [{"pixels": sample.pixels}], "preprocess": "none"}
        )


class BatchUser(DigitsUser):
    """Sends 16 base64 PNGs in one JSON request, the way a batch job does."""

    weight = 1

    @task
    def predict_batch(self) -> None:
        batch: list[Sample] = random.sample(SAMPLES, BATCH_SIZE)
        self.predict(
            f"json batch of {BATCH_SIZE}",
            [sample.label for sample in batch],
            json={"instances": [{"image": sample.png_base64} for sample in batch], "preprocess": "auto"},
        )


class FeatureMapsUser(DigitsUser):
    """Asks for every layer's feature maps as PNG grids, the way the visualization page does."""

    weight = 1
    layers: list[str]  # the model's feature-map layers, from its card

    def on_start(self) -> None:
        self.layers = []
        with self.client.get("/v1/models/digits", name="model card", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}")
                return
            card = response.json()
            self.layers = [layer["name"] for layer in card["layers"] if layer["feature_map"]]

    @task
    def predict_features(self) -> None:
        sample = random.choice(SAMPLES)
        self.predict(
            "json feature maps",
            [sample.label],
            layers=self.layers,
            json={
                "instances": [{"image": sample.png_base64}],
                "preprocess": "auto",
                "features": ["all"],
                "feature_format": "png",
            },
        )
