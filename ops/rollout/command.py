"""``digits rollout start|status|abort|rollback``: a client of the gateway's rollout endpoints (admin key)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ops.rollout.client import ClientSettings, GatewayClient, GatewayError
from ops.rollout.progress import ended_line, progress_line, running, summary_line

WATCH_SECONDS = 1.0
EXIT_PROMOTED, EXIT_ENDED_OTHERWISE, EXIT_REFUSED = 0, 1, 2


class LiveLine:
    """One progress line: rewritten in place on a terminal, printed once per change otherwise (logs, pipes)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.last = ""

    def show(self, line: str) -> None:
        if line == self.last:
            return
        if self.tty:
            self.out.write(f"\r{line}{' ' * max(0, len(self.last) - len(line))}")
        else:
            self.out.write(f"{line}\n")
        self.out.flush()
        self.last = line

    def close(self) -> None:
        if self.tty and self.last:
            self.out.write("\n")
            self.out.flush()


def watch(client: GatewayClient, interval: float, out: TextIO) -> int:
    """Follow the running rollout until it ends: 0 when promoted (or when none ever ran), else 1."""
    live = LiveLine(out)
    try:
        while True:
            report = client.get("/v1/rollout")
            if running(report) is None:
                break
            live.show(progress_line(report))
            time.sleep(interval)
    finally:
        live.close()
    rollout = report.get("rollout")
    if rollout is None:
        print(summary_line(report), file=out)
        return EXIT_PROMOTED
    print(ended_line(rollout), file=out)
    return EXIT_PROMOTED if rollout["status"] == "promoted" else EXIT_ENDED_OTHERWISE


def _start(client: GatewayClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"candidate": args.candidate}
    if args.steps:
        body["steps"] = [step.strip() for step in args.steps.split(",") if step.strip()]
    report = client.post("/v1/rollout/start", body)
    rollout = report["rollout"]
    print(f"rollout of {rollout['candidate']} over {rollout['previous']} started: {','.join(rollout['steps'])}")
    return watch(client, args.interval, sys.stdout) if args.watch else 0


def _status(client: GatewayClient, args: argparse.Namespace) -> int:
    if args.watch:
        return watch(client, args.interval, sys.stdout)
    print(progress_line(client.get("/v1/rollout")))
    return 0


def _abort(client: GatewayClient, args: argparse.Namespace) -> int:
    report = client.post("/v1/rollout/abort")
    print(f"{ended_line(report['rollout'])}; stable is {report['policy']['stable']}")
    return 0


def _rollback(client: GatewayClient, args: argparse.Namespace) -> int:
    report = client.post("/v1/rollout/rollback")
    print(f"{ended_line(report['rollout'])}; stable is {report['policy']['stable']}")
    return 0


Action = Callable[[GatewayClient, argparse.Namespace], int]


def _handler(action: Action) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        overrides = {"url": args.url, "api_key": args.api_key}
        settings = ClientSettings(**{name: value for name, value in overrides.items() if value is not None})
        try:
            return action(GatewayClient(settings), args)
        except GatewayError as exc:
            print(f"digits rollout: {exc}", file=sys.stderr)
            return EXIT_REFUSED

    return handle


def _common(parser: argparse.ArgumentParser, *, watchable: bool) -> None:
    parser.add_argument("--url", help="the gateway (default: $DIGITS_URL or http://127.0.0.1:8000)")
    parser.add_argument("--api-key", help="an admin key (default: $DIGITS_API_KEY)")
    if watchable:
        parser.add_argument(
            "--watch", action="store_true", help="follow the rollout with a live progress line until it ends: "
            "exit 0 when promoted, 1 when rolled back or aborted"
        )  # fmt: skip
        parser.add_argument("--interval", type=float, default=WATCH_SECONDS, help="seconds between two readings")


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "rollout",
        help="roll a candidate model version out automatically, gated by SLOs; follow, abort or roll it back",
    )
    actions = parser.add_subparsers(dest="action", required=True)

    start = actions.add_parser("start", help="start rolling CANDIDATE out (it is loaded, warmed and probed first)")
    start.add_argument("candidate", help="the version, a directory of the model repository")
    start.add_argument("--steps", help="the plan, e.g. shadow,5,25,50,100 (default: the gateway's rollout_steps)")
    _common(start, watchable=True)
    start.set_defaults(handler=_handler(_start))

    status = actions.add_parser("status", help="the serving state, or the running rollout's progress")
    _common(status, watchable=True)
    status.set_defaults(handler=_handler(_status))

    abort = actions.add_parser("abort", help="stop the running rollout: all traffic back to stable")
    _common(abort, watchable=False)
    abort.set_defaults(handler=_handler(_abort))

    rollback = actions.add_parser(
        "rollback", help="back to the previous stable version now (a running rollout's, or the last promoted one's)"
    )
    _common(rollback, watchable=False)
    rollback.set_defaults(handler=_handler(_rollback))
