"""The ceiling: the TorchScript model in a plain loop, with no HTTP, queue or event loop.

    python -m bench.model_loop --workload pixels --batch-size 32 --duration 5 [--artifact PATH]

Each call does the compute a server must do for ``batch-size`` requests of the workload
(pixels: normalize; png: decode, preprocess with ``auto``, normalize), through the gateway's
own pipeline, then runs one forward pass over them. It prints one JSON line: images/s and
the latency of a call. The benchmark runs it as a separate process on the server's CPUs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import orjson
import torch

from loadtest.samples import Sample, load_samples
from loadtest.workloads import Workload
from model.card import load_card
from model.settings import DEFAULT_ARTIFACT
from service.core.model_runner import NO_LAYERS, ModelRunner
from service.core.pipeline import Pipeline
from service.core.preprocessing import pixel_rows
from service.core.settings import Settings
from service.core.types import Limits, RawInput


@dataclass(frozen=True)
class LoopResult:
    calls: int
    images: int
    duration_s: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cpu_s: float  # CPU time this process used during the loop, all threads

    @property
    def images_per_s(self) -> float:
        return self.images / self.duration_s


def raw_input(workload: Workload, sample: Sample) -> RawInput:
    """What a request of the workload carries to the server, read as the server reads it: ``pixels`` rows through
    the request schema's validator, a PNG as its bytes."""
    return pixel_rows(sample.pixels) if workload.preprocess == "none" else sample.png


def run_loop(
    runner: ModelRunner,
    pipeline: Pipeline,
    workload: Workload,
    samples: Sequence[Sample],
    batch_size: int,
    duration_s: float,
) -> LoopResult:
    preprocess = workload.preprocess
    latencies: list[float] = []
    position = 0
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + duration_s
    now = started
    while now < deadline:
        chosen = [samples[(position + i) % len(samples)] for i in range(batch_size)]
        position += batch_size
        call_started = time.perf_counter()
        runner.run(pipeline.prepare([raw_input(workload, sample) for sample in chosen], preprocess), NO_LAYERS)
        now = time.perf_counter()
        latencies.append(now - call_started)
    p50, p90, p95, p99 = np.percentile(latencies, [50, 90, 95, 99]) * 1000
    return LoopResult(
        calls=len(latencies),
        images=len(latencies) * batch_size,
        duration_s=now - started,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p95_ms=float(p95),
        p99_ms=float(p99),
        max_ms=max(latencies) * 1000,
        cpu_s=time.process_time() - cpu_started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_loop", description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT)
    parser.add_argument("--workload", type=Workload, choices=list(Workload), default=Workload.pixels)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of measurement")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds of unmeasured calls first")
    parser.add_argument("--torch-threads", type=int, default=1, help="intra-op threads (the gateway's default is 1)")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.duration <= 0:
        parser.error("--batch-size and --duration must be positive")
    runner = ModelRunner(args.artifact, torch.device("cpu"), args.torch_threads)  # as the embedded backend runs it
    pipeline = Pipeline(
        load_card(args.artifact), Limits(max_images=args.batch_size, max_pixels=Settings().limits.max_image_pixels)
    )
    samples = load_samples()
    if args.warmup > 0:
        run_loop(runner, pipeline, args.workload, samples, args.batch_size, args.warmup)
    result = run_loop(runner, pipeline, args.workload, samples, args.batch_size, args.duration)
    sys.stdout.write(orjson.dumps({**asdict(result), "images_per_s": result.images_per_s}).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
