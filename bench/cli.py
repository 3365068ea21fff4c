"""``digits benchmark`` (also ``python -m bench``): the options and what they become."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.settings import DEFAULT_ARTIFACT

QUICK_DURATION_S = 2
QUICK_CONNECTIONS = "1,32"


def _benchmark(args: argparse.Namespace) -> int:
    from bench.benchmark import TARGETS, BenchmarkConfig, default_targets, parse_cpus, run_benchmark, run_names
    from bench.peers_venv import default_venv
    from bench.report import objective_checks, write_report
    from loadtest.workloads import Workload

    try:
        config = BenchmarkConfig(
            targets=run_names(args.targets, list(TARGETS), "target")
            if args.targets
            else default_targets(args.previous_ref),
            workloads=tuple(Workload(name) for name in run_names(args.workloads, list(Workload), "workload")),
            connections=tuple(
                int(n) for n in (args.connections or (QUICK_CONNECTIONS if args.quick else "1,8,32")).split(",")
            ),
            duration_s=args.duration or (QUICK_DURATION_S if args.quick else BenchmarkConfig.duration_s),
            warmup_s=args.warmup,
            rounds=args.rounds or (1 if args.quick else BenchmarkConfig.rounds),
            artifact=args.artifact,
            out_dir=args.out,
            server_cpus=parse_cpus(args.server_cpus),
            generator_cpus=parse_cpus(args.generator_cpus),
            torch_threads=args.torch_threads,
            wrk_threads=args.wrk_threads,
            http_workers=args.workers,
            log_dir=args.log_dir,
            peers_venv=args.peers_venv or default_venv(),
            previous_ref=args.previous_ref,
        )
    except ValueError as exc:
        print(f"digits benchmark: {exc}", file=sys.stderr)
        return 2
    run = run_benchmark(config)
    markdown, data = write_report(run, config.out_dir)
    for line in objective_checks(run):
        print(f"gateway target: {line}")
    print(f"wrote {markdown} and {data}")
    return 0 if run.measurements else 1


def add_benchmark(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "benchmark",
        help="the gateway against its alternatives, one workload, side by side (wrk)",
        description="Start each target in turn (model loop, FastAPI echo, naive FastAPI, LitServe, BentoML, the "
        "previous gateway with today's model and with its own, the gateway, TorchServe, gateway over TorchServe), "
        "drive it with wrk at each connection count, and write benchmark.md and benchmark.json: req/s, p50, p95, "
        "p99, ratios, server and wrk CPU.",
    )
    parser.add_argument(
        "--targets",
        help="comma-separated subset (default: all, in order; the previous-release ones with --previous-ref)",
    )
    parser.add_argument(
        "--workloads", default="pixels,png", help="pixels, png and/or oip (binary /v2) (default: %(default)s)"
    )
    parser.add_argument("--connections", help="comma-separated counts (default: 1,8,32; --quick: 1,32)")
    parser.add_argument("--duration", type=int, help="seconds measured per cell (default: 4; --quick: 2)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="times every target is measured, in turn; a cell shows its median round (default: 3; --quick: 1)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per cell (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="short cells and fewer connection counts: a smoke run")
    parser.add_argument(
        "--artifact", type=Path, default=DEFAULT_ARTIFACT, help="model to serve (default: the shipped one)"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("reports"), help="folder for benchmark.md/json (default: %(default)s)"
    )
    parser.add_argument(
        "--server-cpus", default="all", help="CPUs for the servers and the model loop, e.g. 1 or 0-1 (default: all)"
    )
    parser.add_argument("--generator-cpus", default="all", help="CPUs for wrk, e.g. 0 (default: all)")
    parser.add_argument(
        "--torch-threads", type=int, default=1, help="model threads of every target (default: %(default)s)"
    )
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default: %(default)s)")
    parser.add_argument(
        "--workers",
        type=int,
        help="processes of every HTTP target but TorchServe: echo, naive, both gateways "
        "(default: one per server CPU, as TorchServe's workers)",
    )
    parser.add_argument("--log-dir", type=Path, help="where server logs go (default: a new temporary folder)")
    parser.add_argument(
        "--peers-venv",
        type=Path,
        help="virtualenv for LitServe and BentoML, made on first use "
        "(default: $DIGITS_PEERS_VENV, else ~/.cache/digits/peers-venv)",
    )
    parser.add_argument(
        "--previous-ref",
        metavar="REF",
        help="git ref (tag, branch, commit, main~5) that gateway-previous, gateway-previous-release and "
        "model-loop-previous-release run; without it they are left out",
    )
    parser.set_defaults(handler=_benchmark)
