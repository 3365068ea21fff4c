"""The model-in-a-loop ceiling: the shipped model, both workloads, as a function and as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import torch

from bench.model_loop import raw_input, run_loop
from loadtest.samples import load_samples
from loadtest.workloads import Workload
from model.card import load_card
from service.core.model_runner import ModelRunner
from service.core.pipeline import Pipeline
from service.core.types import Limits


def pipeline(artifact: Path) -> Pipeline:
    return Pipeline(load_card(artifact), Limits(max_images=64, max_pixels=1_000_000))


@pytest.mark.parametrize("workload", list(Workload))
def test_each_call_runs_a_whole_batch(artifact: Path, workload: Workload) -> None:
    runner = ModelRunner(artifact, torch.device("cpu"), torch_threads=1)
    result = run_loop(runner, pipeline(artifact), workload, load_samples(), batch_size=4, duration_s=0.3)
    assert result.calls >= 1
    assert result.images == 4 * result.calls
    assert result.images_per_s == pytest.approx(result.images / result.duration_s)
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms <= result.max_ms
    assert result.cpu_s > 0


@pytest.mark.parametrize("workload", list(Workload))
def test_the_prepared_input_is_what_the_model_labels_right(artifact: Path, workload: Workload) -> None:
    samples = load_samples()
    batch = pipeline(artifact).prepare([raw_input(workload, sample) for sample in samples], workload.preprocess)
    module = torch.jit.load(str(artifact), map_location="cpu").eval()
    with torch.inference_mode():
        labels = module(torch.from_numpy(batch)).argmax(dim=1).tolist()
    assert labels == [sample.label for sample in samples]


def test_the_command_prints_one_json_line(artifact: Path) -> None:
    command = [sys.executable, "-m", "bench.model_loop", "--artifact", str(artifact), "--workload", "png",
               "--batch-size", "2", "--duration", "0.3", "--warmup", "0"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=True, timeout=120)
    parsed = orjson.loads(result.stdout)
    assert parsed["images"] == 2 * parsed["calls"] > 0
    assert parsed["images_per_s"] > 0
