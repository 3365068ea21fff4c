"""The side-by-side benchmark: one workload, every target, the same machine, one run (``digits benchmark``).

Targets are measured one after another, each alone on the machine: start it, send one
checked probe per workload, warm up, then ``wrk`` holds N connections for a fixed time
(for the model loop: a batch of N per call). A target that cannot start or answers wrongly
is recorded as skipped with the reason, and the run goes on with the next one.

The whole sequence runs several rounds, so a burst of noise from a shared machine hits one
round of one target rather than the ratios between targets: each cell reports its median
round whole (percentiles and CPU of that same round) with every round's throughput beside it.
Each round starts one target further along the list, so that no target always runs first or
always follows the same one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.machine import describe_machine
from bench.peer_targets import BentoMLTarget, LitServeTarget
from bench.peers_venv import PeersVenvError, default_venv, ensure_peers_venv
from bench.previous import PreviousError, resolve
from bench.previous_model import PreviousModelLoopTarget, PreviousReleaseModelLoopTarget
from bench.results import BenchmarkRun, Measurement, Skipped
from bench.targets import (
    BenchContext,
    DriftOffGatewayTarget,
    EchoTarget,
    GatewayTarget,
    ModelLoopTarget,
    NaiveTarget,
    PreviousGatewayTarget,
    PreviousReleaseGatewayTarget,
    ShadowGatewayTarget,
    Target,
    TargetError,
    TracedGatewayTarget,
    TracedNiceReceiverGatewayTarget,
    UnsampledTracedGatewayTarget,
)
from bench.torchserve_targets import GatewayOverTorchServeTarget, TorchServeTarget
from bench.wrk import Wrk, WrkError
from loadtest.samples import load_samples
from loadtest.workloads import DEFAULT_WORKLOADS, Workload
from model.settings import DEFAULT_ARTIFACT

# In this order: the ceilings first, then the alternatives, then ours.
TARGETS: dict[str, Callable[[], Target]] = {
    target.name: target
    for target in (
        ModelLoopTarget,
        PreviousModelLoopTarget,
        PreviousReleaseModelLoopTarget,
        EchoTarget,
        NaiveTarget,
        LitServeTarget,
        BentoMLTarget,
        PreviousGatewayTarget,
        PreviousReleaseGatewayTarget,
        GatewayTarget,
        DriftOffGatewayTarget,
        ShadowGatewayTarget,
        TracedGatewayTarget,
        UnsampledTracedGatewayTarget,
        TracedNiceReceiverGatewayTarget,
        TorchServeTarget,
        GatewayOverTorchServeTarget,
    )
}
# Targets that run in the peers' virtualenv, made before the first round when it is missing.
PEERS_VENV_TARGETS = frozenset({LitServeTarget.name, BentoMLTarget.name})
# Targets that run the commit named by --previous-ref; there is no default commit.
PREVIOUS_REF_TARGETS = frozenset(
    {PreviousReleaseModelLoopTarget.name, PreviousGatewayTarget.name, PreviousReleaseGatewayTarget.name}
)
DEFAULT_CONNECTIONS = (1, 8, 32)

Progress = Callable[[str], None]


def parse_cpus(text: str) -> frozenset[int] | None:
    """``"all"`` (no pinning), or a CPU list such as ``"1"``, ``"0,1"`` or ``"0-3"``."""
    if text.strip().lower() == "all":
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"CPU list {text!r} is not like 1 or 0,1 or 0-3 (or all)")
        cpus.update(range(int(low), int(high or low) + 1))
    available = os.sched_getaffinity(0)
    if not cpus <= available:
        raise ValueError(f"CPU list {text!r} names CPUs this process cannot use; it may use {sorted(available)}")
    return frozenset(cpus)


def default_targets(previous_ref: str | None) -> tuple[str, ...]:
    """Every target, in order; those of ``--previous-ref`` only when one is given."""
    return tuple(name for name in TARGETS if previous_ref is not None or name not in PREVIOUS_REF_TARGETS)


@dataclass(frozen=True)
class BenchmarkConfig:
    targets: tuple[str, ...] = default_targets(None)
    workloads: tuple[Workload, ...] = DEFAULT_WORKLOADS
    connections: tuple[int, ...] = DEFAULT_CONNECTIONS
    duration_s: int = 4
    warmup_s: int = 1
    rounds: int = 3
    artifact: Path = DEFAULT_ARTIFACT
    out_dir: Path = Path("reports")
    server_cpus: frozenset[int] | None = None
    generator_cpus: frozenset[int] | None = None
    torch_threads: int = 1
    wrk_threads: int = 1
    http_workers: int | None = None  # default: one per server CPU, as TorchServe's workers
    log_dir: Path | None = field(default=None)
    peers_venv: Path = field(default_factory=default_venv)
    previous_ref: str | None = None  # the commit the previous-release targets run (a tag, branch, main~5)

    def __post_init__(self) -> None:
        unknown = [name for name in self.targets if name not in TARGETS]
        if unknown or not self.targets:
            raise ValueError(f"unknown or no target(s) {', '.join(unknown)}; choose from {', '.join(TARGETS)}")
        if not self.workloads:
            raise ValueError(f"name at least one workload: {', '.join(Workload)}")
        if not self.connections or min(self.connections) < 1:
            raise ValueError("connection counts must be 1 or more, e.g. --connections 1,8,32")
        if self.duration_s < 1 or self.warmup_s < 0:
            raise ValueError("--duration must be at least 1 s and --warmup 0 s or more (whole seconds: wrk's unit)")
        if self.rounds < 1:
            raise ValueError("--rounds must be at least 1")
        if self.torch_threads < 1 or self.wrk_threads < 1 or (self.http_workers or 1) < 1:
            raise ValueError("--torch-threads, --wrk-threads and --workers must be at least 1")
        if not self.artifact.is_file():
            raise ValueError(f"model artifact {self.artifact} does not exist; pass --artifact or run digits train")
        if self.runs_previous_ref:
            if self.previous_ref is None:
                named = ", ".join(name for name in self.targets if name in PREVIOUS_REF_TARGETS)
                raise ValueError(f"{named} run an earlier commit: name it with --previous-ref REF (e.g. main~5)")
            try:
                resolve(self.previous_ref)
            except PreviousError as exc:
                raise ValueError(f"--previous-ref {self.previous_ref!r} is no commit here: {exc}") from exc

    @property
    def runs_previous_ref(self) -> bool:
        return bool(PREVIOUS_REF_TARGETS & set(self.targets))

    def _previous(self) -> dict[str, str]:
        if self.previous_ref is None:
            return {}
        return {"previous_ref": self.previous_ref, "previous_commit": resolve(self.previous_ref)}

    @property
    def workers(self) -> int:
        return self.http_workers or len(self.server_cpus or os.sched_getaffinity(0))

    @property
    def cells(self) -> int:
        return len(self.targets) * len(self.workloads) * len(self.connections)

    def settings(self) -> dict[str, object]:
        return {
            "targets": list(self.targets),
            "workloads": [w.value for w in self.workloads],
            "connections": list(self.connections),
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "rounds": self.rounds,
            "artifact": str(self.artifact),
            "server_cpus": sorted(self.server_cpus) if self.server_cpus else "all",
            "generator_cpus": sorted(self.generator_cpus) if self.generator_cpus else "all",
            "torch_threads": self.torch_threads,
            "wrk_threads": self.wrk_threads,
            "http_workers": self.workers,
            **(self._previous() if self.runs_previous_ref else {}),
        }


@contextlib.contextmanager
def pinned(cpus: frozenset[int] | None) -> Iterator[None]:
    """Run the block on ``cpus``; the servers and loops started inside inherit the affinity."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def describe(row: Measurement) -> str:
    unit = "images/s" if row.generator_cpu is None else "req/s"
    wrk = f", wrk CPU {row.generator_cpu:.2f}" if row.generator_cpu is not None else ""
    errors = f", {row.errors} ERRORS" if row.errors else ""
    return (
        f"{row.target:<20} {row.workload:<6} c={row.connections:<3} {row.rps:9.0f} {unit:<8} "
        f"p50 {row.p50_ms:6.1f} ms  p95 {row.p95_ms:6.1f} ms  p99 {row.p99_ms:6.1f} ms  "
        f"server CPU {row.server_cpu:.2f}{wrk}{errors}"
    )


def _measure_target(
    target: Target, config: BenchmarkConfig, context: BenchContext, run: BenchmarkRun, progress: Progress
) -> None:
    for workload in config.workloads:
        reason = target.supports(workload)
        if reason is not None:
            run.skipped.append(Skipped(target.name, workload.value, reason))
            progress(f"{target.name:<20} {workload:<6} skipped: {reason}")
            continue
        for connections in config.connections:
            try:
                row = target.measure(workload, connections, context)
            except (TargetError, WrkError) as exc:
                run.skipped.append(Skipped(target.name, workload.value, str(exc)))
                progress(f"{target.name:<20} {workload:<6} failed: {exc}")
                break
            run.measurements.append(row)
            progress(describe(row))


def run_benchmark(config: BenchmarkConfig, progress: Progress = print) -> BenchmarkRun:
    run = BenchmarkRun(
        settings=config.settings(),
        machine=describe_machine(),
        targets={name: TARGETS[name]().description for name in config.targets},
    )
    samples = load_samples()
    log_dir = config.log_dir or Path(tempfile.mkdtemp(prefix="digits-benchmark-"))
    progress(f"{config.rounds} x {config.cells} cells of {config.duration_s} s; server logs in {log_dir}")
    targets = list(config.targets)
    if PEERS_VENV_TARGETS & set(targets):
        try:
            ensure_peers_venv(config.peers_venv, progress)
        except PeersVenvError as exc:
            progress(f"not measured: {', '.join(sorted(PEERS_VENV_TARGETS & set(targets)))}: {exc}")
            for name in PEERS_VENV_TARGETS & set(targets):
                run.skipped += [Skipped(name, w.value, f"did not start: {exc}") for w in config.workloads]
            targets = [name for name in targets if name not in PEERS_VENV_TARGETS]
    with Wrk(cpus=set(config.generator_cpus or ()), threads=config.wrk_threads) as wrk, pinned(config.server_cpus):
        context = BenchContext(
            artifact=config.artifact.resolve(),
            samples=samples,
            log_dir=log_dir,
            wrk=wrk,
            duration_s=config.duration_s,
            warmup_s=config.warmup_s,
            torch_threads=config.torch_threads,
            http_workers=config.workers,
            peers_venv=config.peers_venv,
            previous_ref=config.previous_ref,
        )
        for number in range(1, config.rounds + 1):
            if config.rounds > 1:
                progress(f"round {number} of {config.rounds}")
            for name in rotated(targets, number - 1):
                target = TARGETS[name]()
                try:
                    target.start(context)
                except TargetError as exc:
                    run.skipped += [Skipped(name, w.value, f"did not start: {exc}") for w in config.workloads]
                    progress(f"{name:<20} did not start: {exc}")
                    continue
                try:
                    _measure_target(target, config, context, run, progress)
                finally:
                    target.stop()
    run.measurements = median_rounds(run.measurements)
    run.skipped = first_per_cell(run.skipped)
    run.machine["load_average_after"] = list(os.getloadavg())
    return run


def rotated(targets: Sequence[str], by: int) -> list[str]:
    """The targets in the order of round ``by`` (from 0): each round starts one further along, so that no target
    always runs first, or always right after the same one."""
    if not targets:
        return []
    by %= len(targets)
    return [*targets[by:], *targets[:by]]


def median_rounds(rows: Sequence[Measurement]) -> list[Measurement]:
    """One row per cell, in first-measured order: the round with the median throughput (the lower one of
    an even count), whole, with every round's throughput in ``round_rps``."""
    cells: dict[tuple[str, str, int], list[Measurement]] = {}
    for row in rows:
        cells.setdefault((row.target, row.workload, row.connections), []).append(row)
    if all(len(rounds) == 1 for rounds in cells.values()):
        return list(rows)
    return [
        replace(sorted(rounds, key=lambda row: row.rps)[(len(rounds) - 1) // 2], round_rps=tuple(r.rps for r in rounds))
        for rounds in cells.values()
    ]


def first_per_cell(skipped: Sequence[Skipped]) -> list[Skipped]:
    """Each target and workload skipped once, with the first reason, however many rounds skipped it."""
    first: dict[tuple[str, str], Skipped] = {}
    for item in skipped:
        first.setdefault((item.target, item.workload), item)
    return list(first.values())


def run_names(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return names
