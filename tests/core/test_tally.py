"""Tallied observations read exactly as prometheus-client's own, in one process and across worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from service.core.metrics import LATENCY_BUCKETS, Metrics
from service.core.tally import Tallies

REPO = Path(__file__).resolve().parents[2]


def _values(seed: int) -> list[float]:
    """Random latencies, every bucket bound exactly (a value on a bound belongs to that bucket), and beyond."""
    rng = np.random.default_rng(seed)
    return [*rng.exponential(0.01, 500).tolist(), *LATENCY_BUCKETS, 0.0, 50.0, 1e9]


def _pair() -> tuple[CollectorRegistry, Histogram, Counter, CollectorRegistry, Histogram, Counter, Tallies]:
    plain, tallied = CollectorRegistry(), CollectorRegistry()
    tallies = Tallies()
    tallied.register(tallies)
    made = []
    for registry in (plain, tallied):
        histogram = Histogram("latency_seconds", "h", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        counter = Counter("answers", "c", ["label"], registry=registry)
        made.append((registry, histogram, counter))
    (a, ha, ca), (b, hb, cb) = made
    return a, ha, ca, b, hb, cb, tallies


def test_a_tallied_histogram_and_counter_read_as_observed_ones() -> None:
    plain, histogram, counter, tallied, tallied_histogram, tallied_counter, tallies = _pair()
    histogram_tally = tallies.histogram(tallied_histogram.labels(route="/v1/predict"))
    counter_tally = tallies.counter(tallied_counter.labels(label="7"))
    for value in _values(0):
        histogram.labels(route="/v1/predict").observe(value)
        counter.labels(label="7").inc()
        histogram_tally.observe(value)
        counter_tally.count += 1
    assert generate_latest(tallied) == generate_latest(plain)  # reading the registry flushed them first
    assert generate_latest(tallied) == generate_latest(plain)  # and a second reading adds nothing twice


def test_values_are_added_only_once_whatever_the_readings_in_between() -> None:
    plain, histogram, _, tallied, tallied_histogram, _, tallies = _pair()
    tally = tallies.histogram(tallied_histogram.labels(route="/"))
    for i, value in enumerate(_values(1)):
        histogram.labels(route="/").observe(value)
        tally.observe(value)
        if i % 37 == 0:
            generate_latest(tallied)
    assert generate_latest(tallied) == generate_latest(plain)


def test_a_histogram_built_otherwise_is_refused_with_what_to_do() -> None:
    counter = Counter("not_a_histogram", "c", registry=CollectorRegistry())
    with pytest.raises(RuntimeError, match=r"pyproject\.toml pins"):
        Tallies().histogram(counter)  # type: ignore[arg-type]


def test_the_gateway_metrics_read_their_tallies() -> None:
    metrics = Metrics()
    tally = metrics.tallies.histogram(metrics.version_duration.labels(version="9.9.9"))
    tally.observe(0.0042)
    text = generate_latest(metrics.exported).decode()
    assert 'digits_version_request_duration_seconds_bucket{le="0.005",version="9.9.9"} 1.0' in text
    assert 'digits_version_request_duration_seconds_count{version="9.9.9"} 1.0' in text


WORKER = """
import sys
from service.core.metrics import Metrics
metrics = Metrics()
tally = metrics.tallies.histogram(metrics.version_duration.labels(version="1.0.0"))
for value in map(float, sys.argv[1:]):
    tally.observe(value)
metrics.retire()  # a worker's exit: what it tallied reaches the shared files
"""


def test_a_worker_s_tallies_reach_the_files_every_worker_reads(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    values = [0.0003, 0.002, 0.002, 0.7, 99.0]
    for part in (values[:2], values[2:]):  # two worker processes
        subprocess.run([sys.executable, "-c", WORKER, *map(str, part)], env=env, check=True, cwd=REPO)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))
    read = {
        (sample.name, sample.labels.get("le")): sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.labels.get("version") == "1.0.0"
    }
    assert read[("digits_version_request_duration_seconds_count", None)] == 5
    assert read[("digits_version_request_duration_seconds_bucket", "0.002")] == 3
    assert read[("digits_version_request_duration_seconds_bucket", "+Inf")] == 5
    assert read[("digits_version_request_duration_seconds_sum", None)] == pytest.approx(sum(values))
