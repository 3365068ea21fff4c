"""``digits loadtest`` and ``digits benchmark`` (also ``python -m loadtest loadtest|benchmark``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from model.settings import DEFAULT_ARTIFACT

QUICK_DURATION_S = 2
QUICK_CONNECTIONS = "1,32"


def _loadtest(args: argparse.Namespace) -> int:
    from loadtest.runner import LoadTestConfig, LoadTestError, Objectives, run_loadtest

    try:
        config = LoadTestConfig(
            host=args.host,
            users=args.users,
            spawn_rate=args.spawn_rate,
            duration_s=args.duration,
            out_dir=args.out,
            think_time_s=args.think_time,
            user_classes=tuple(args.user_class or ()),
            processes=args.processes,
            objectives=Objectives(args.max_p99_ms, args.max_failure_ratio, args.min_rps),
        )
        return run_loadtest(config)
    except (ValueError, LoadTestError) as exc:
        print(f"digits loadtest: {exc}", file=sys.stderr)
        return 2


def add_loadtest(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from loadtest.runner import USER_CLASSES, LoadTestConfig, Objectives

    defaults, objectives = LoadTestConfig(), Objectives()
    parser = sub.add_parser(
        "loadtest",
        help="headless Locust run with service-level objectives (exit 1 when one is missed)",
        description="Run the Locust users of loadtest/locustfile.py against a running server, write Locust's CSV "
        "and HTML report, and exit 1 when p99 latency, failure ratio (wrong answers included) or throughput "
        "misses its objective.",
    )
    parser.add_argument("--host", default=defaults.host, help="base URL of the server (default: %(default)s)")
    parser.add_argument("--users", type=int, default=defaults.users, help="concurrent users (default: %(default)s)")
    parser.add_argument(
        "--spawn-rate", type=float, default=defaults.spawn_rate, help="users started per second (default: %(default)s)"
    )
    parser.add_argument(
        "--duration", type=float, default=defaults.duration_s, help="seconds of load (default: %(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=defaults.out_dir, help="folder for the CSV, HTML and summary (default: %(default)s)"
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=defaults.think_time_s,
        help="max seconds a user waits between requests (default: %(default)s)",
    )
    parser.add_argument(
        "--user-class",
        action="append",
        choices=USER_CLASSES,
        help="run only these user classes (repeatable; default: all, by weight)",
    )
    parser.add_argument(
        "--processes", type=int, default=defaults.processes, help="Locust processes (default: %(default)s)"
    )
    parser.add_argument(
        "--max-p99-ms",
        type=float,
        default=objectives.max_p99_ms,
        help="p99 latency objective (default: %(default)s ms)",
    )
    parser.add_argument(
        "--max-failure-ratio",
        type=float,
        default=objectives.max_failure_ratio,
        help="failed/all requests objective (default: %(default)s)",
    )
    parser.add_argument(
        "--min-rps", type=float, default=objectives.min_rps, help="throughput objective, req/s (default: %(default)s)"
    )
    parser.set_defaults(handler=_loadtest)


def _benchmark(args: argparse.Namespace) -> int:
    from loadtest.benchmark import TARGETS, BenchmarkConfig, parse_cpus, run_benchmark, run_names
    from loadtest.peers_venv import default_venv
    from loadtest.previous import PREVIOUS_REF
    from loadtest.report import objective_checks, write_report
    from loadtest.workloads import Workload

    try:
        config = BenchmarkConfig(
            targets=run_names(args.targets, list(TARGETS), "target") if args.targets else tuple(TARGETS),
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
            previous_ref=args.previous_ref or PREVIOUS_REF,
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
    parser.add_argument("--targets", help="comma-separated subset (default: all, in order)")
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
        "--previous-ref", help="git ref the gateway-previous target runs (default: the gateway before issue 14)"
    )
    parser.set_defaults(handler=_benchmark)


def _soak(args: argparse.Namespace) -> int:
    from loadtest.soak import run_soak

    try:
        report = run_soak(
            url=args.url,
            pid=args.pid,
            seconds=args.seconds,
            fraction=args.fraction,
            rate=args.rate,
            sample_seconds=args.sample_seconds,
            warmup_seconds=args.warmup,
            log_dir=args.log_dir,
            out=args.out,
        )
    except ValueError as exc:
        print(f"digits soak: {exc}", file=sys.stderr)
        return 2
    totals = report.totals()
    failed = totals["refused_busy"] + totals["server_errors"] + totals["timeouts"] + totals["unexpected"]
    return 1 if failed else 0


def add_soak(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "soak",
        help="a long open-loop run of mixed and bad requests; reports memory, descriptors, 5xx and timeouts",
        description="Send JSON pixels, PNG uploads, feature-map requests and bad inputs at a constant rate (by "
        "default 70 % of the capacity measured first with the same mix) and print, every few seconds, the "
        "gateway's resident memory and open file descriptors with the answers so far. Exit 1 on any 5xx "
        "(503 busy refusals with Retry-After included), timeout or unexpected answer.",
    )
    parser.add_argument("--url", help="a running gateway (default: start one with the DIGITS_* settings)")
    parser.add_argument("--pid", type=int, help="the process id of the gateway at --url")
    parser.add_argument("--seconds", type=float, default=600, help="how long (default: %(default)s)")
    parser.add_argument("--fraction", type=float, default=0.7, help="of the measured capacity (default: %(default)s)")
    parser.add_argument("--rate", type=float, help="requests a second instead (no capacity measurement)")
    parser.add_argument("--sample-seconds", type=float, default=5, help="between readings (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before growth counts (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="write the readings as JSON here")
    parser.add_argument("--log-dir", type=Path, default=Path("build/soak"), help="the started gateway's log")
    parser.set_defaults(handler=_soak)
