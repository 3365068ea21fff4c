"""``digits loadtest`` and ``digits soak`` (also ``python -m loadtest loadtest``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
