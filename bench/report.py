"""The benchmark report: ``benchmark.json`` (every number) and ``benchmark.md`` (the README table)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.results import BenchmarkRun, Measurement
from loadtest.workloads import Workload

BASELINE = "gateway"
CEILING = "model-loop"
# A 1-minute load average above this share of the CPUs means something else was running.
BUSY_LOAD_PER_CPU = 0.25


@dataclass(frozen=True)
class Objective:
    """The gateway's throughput target for one workload (issue 3), at ``connections`` connections."""

    workload: Workload
    connections: int
    min_rps: float
    max_p99_ms: float | None

    def check(self, row: Measurement | None) -> str:
        wanted = f">= {self.min_rps:,.0f} req/s" + (f", p99 <= {self.max_p99_ms:g} ms" if self.max_p99_ms else "")
        if row is None:
            return f"{self.workload.value} at {self.connections} connections: {wanted}: not measured"
        met = row.rps >= self.min_rps and (self.max_p99_ms is None or row.p99_ms <= self.max_p99_ms) and not row.errors
        got = f"{row.rps:,.0f} req/s, p99 {row.p99_ms:.1f} ms"
        return f"{self.workload.value} at {self.connections} connections: {wanted}: {got}: {'met' if met else 'MISSED'}"


OBJECTIVES = (
    Objective(Workload.pixels, 32, 3000, 25),
    Objective(Workload.png, 32, 2000, None),
)


def ratios(run: BenchmarkRun, row: Measurement) -> dict[str, float | None]:
    """This row's throughput relative to the gateway's and to the model loop's, same workload and connections."""
    baseline = run.find(BASELINE, row.workload, row.connections)
    ceiling = run.find(CEILING, row.workload, row.connections)
    return {
        "vs_gateway": row.rps / baseline.rps if baseline and baseline.rps else None,
        "of_ceiling": row.rps / ceiling.rps if ceiling and ceiling.rps else None,
    }


def objective_checks(run: BenchmarkRun) -> list[str]:
    return [o.check(run.find(BASELINE, o.workload.value, o.connections)) for o in OBJECTIVES]


def to_json(run: BenchmarkRun) -> dict[str, Any]:
    return {
        "settings": run.settings,
        "machine": run.machine,
        "targets": run.targets,
        "workloads": {w.value: w.description for w in Workload},
        "measurements": [{**asdict(row), **ratios(run, row)} for row in run.measurements],
        "skipped": [asdict(item) for item in run.skipped],
        "objectives": objective_checks(run),
    }


def _cpus(value: object) -> str:
    return "all CPUs" if value == "all" else f"CPU {value}"


def _header(run: BenchmarkRun) -> list[str]:
    m, s = run.machine, run.settings
    packages = m.get("packages", {})
    versions = ", ".join(f"{name} {version}" for name, version in packages.items())
    load = (m.get("load_average_before") or [0.0])[0]
    cpus = m.get("logical_cpus") or 1
    lines = [
        f"Measured {m.get('date')} on {m.get('cpu')} ({cpus} logical CPUs, "
        f"{m.get('memory_gib')} GiB), {m.get('os')}, Python {m.get('python')}, {versions}. "
        f"Load average (1 min) before the run: {load:.2f}.",
        "",
    ]
    if load > BUSY_LOAD_PER_CPU * cpus:
        lines += [
            f"**The machine was busy before the run (load {load:.2f} on {cpus} CPUs): other work shared the CPUs, "
            "so these numbers are low and noisy. Run again on a quiet machine.**",
            "",
        ]
    return [
        *lines,
        f"Load generator: {m.get('wrk') or 'wrk'} ({s['wrk_threads']} thread) on the same machine, pinned to "
        f"{_cpus(s['generator_cpus'])}; servers pinned to {_cpus(s['server_cpus'])}. Every target runs alone; "
        f"each cell is {s['warmup_s']} s of warm-up, then {s['duration_s']} s measured at a fixed number of "
        f"connections. {_rounds(s.get('rounds', 1))}"
        f"HTTP workers: {s.get('http_workers', 1)} processes each for the echo app, the naive app "
        "and the gateways; as many model processes, and as many HTTP processes besides, for LitServe and BentoML "
        f"(TorchServe: one worker per CPU). {_previous(s)}"
        f"Model threads: {s['torch_threads']} (each gateway worker, naive app, each TorchServe worker, model loop). "
        "*wrk CPU* and *server CPU* are cores kept busy on average (1.00 = one core). "
        "*vs gateway* is req/s relative to the embedded gateway, *of ceiling* relative to the model loop.",
    ]


def _previous(settings: dict[str, Any]) -> str:
    commit, ref = settings.get("previous_commit"), settings.get("previous_ref")
    if not commit:
        return ""
    named = "" if ref == commit else f" (`{ref}`)"
    users = "gateway-previous, gateway-previous-release, model-loop-previous-release"
    return f"The previous release ({users}) is commit `{commit}`{named}. "


def _rounds(rounds: int) -> str:
    if rounds == 1:
        return "One round: each cell was measured once. "
    return (
        f"{rounds} rounds, every target measured once per round in turn, each round starting one target further "
        "along the list: each cell is its median round (req/s, percentiles and CPU all of that round) and *rounds* "
        "gives the lowest and highest req/s of the rounds, the spread that noise on this machine caused. "
    )


def _spread(row: Measurement) -> str:
    return f"{min(row.round_rps):,.0f}-{max(row.round_rps):,.0f}" if row.round_rps else "-"


def _row(run: BenchmarkRun, row: Measurement) -> str:
    share = ratios(run, row)
    unit = " img/s" if row.generator_cpu is None else ""
    vs = f"{share['vs_gateway']:.2f}x" if share["vs_gateway"] is not None else "-"
    of = f"{share['of_ceiling']:.0%}" if share["of_ceiling"] is not None else "-"
    wrk = f"{row.generator_cpu:.2f}" if row.generator_cpu is not None else "-"
    return (
        f"| {row.target} | {row.connections} | {row.rps:,.0f}{unit} | {_spread(row)} | {row.p50_ms:.1f} | "
        f"{row.p95_ms:.1f} | {row.p99_ms:.1f} | {vs} | {of} | {row.errors} | {row.server_cpu:.2f} | {wrk} |"
    )


def to_markdown(run: BenchmarkRun) -> str:
    lines = ["# Benchmark: the digits gateway and its alternatives", "", *_header(run), ""]
    lines += ["| target | what it is |", "| --- | --- |"]
    lines += [f"| {name} | {description} |" for name, description in run.targets.items()]
    for workload in Workload:
        rows = [row for row in run.measurements if row.workload == workload.value]
        skipped = [item for item in run.skipped if item.workload == workload.value]
        if not rows and not skipped:
            continue
        lines += ["", f"## Workload `{workload.value}`: {workload.description}", ""]
        lines += [
            "| target | connections | req/s | rounds | p50 ms | p95 ms | p99 ms | vs gateway | of ceiling | errors "
            "| server CPU | wrk CPU |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [_row(run, row) for row in rows]
        if skipped:
            lines += [""] + [f"- {item.target} not measured: {item.reason}" for item in skipped]
    lines += ["", "## Gateway targets (issue 3)", ""]
    lines += [f"- {check}" for check in objective_checks(run)]
    return "\n".join(lines) + "\n"


def write_report(run: BenchmarkRun, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, data = out_dir / "benchmark.md", out_dir / "benchmark.json"
    markdown.write_text(to_markdown(run))
    data.write_bytes(orjson.dumps(to_json(run), option=orjson.OPT_INDENT_2) + b"\n")
    return markdown, data
