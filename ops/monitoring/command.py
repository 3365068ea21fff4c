"""``digits monitor``: the gateway plus the deploy Prometheus (rules included) on this machine, no Docker."""

from __future__ import annotations

import argparse
import contextlib
import logging
import tempfile
from pathlib import Path

from ops.monitoring.config import DEFAULT_PROMETHEUS_CONFIG, PrometheusConfigError
from ops.monitoring.stack import MonitorError, MonitoringStack, MonitorOptions
from ops.settings import OpsSettings
from ops.signals import stop_on_signals

log = logging.getLogger(__name__)


def run_monitor(options: MonitorOptions, data_dir: Path | None) -> int:
    """Runs until Ctrl-C or SIGTERM (exit 0), or until a process dies on its own (exit 1)."""
    with contextlib.ExitStack() as resources:
        workdir = data_dir or Path(resources.enter_context(tempfile.TemporaryDirectory(prefix="digits-monitor-")))
        workdir.mkdir(parents=True, exist_ok=True)
        stack = MonitoringStack(options, workdir)
        with stop_on_signals():
            try:
                stack.start()
                print(
                    f"gateway     {options.gateway_url if options.start_gateway else '(not started)'}\n"
                    f"Prometheus  {options.prometheus_url}  (alerts: {options.prometheus_url}/alerts)\n"
                    f"Logs        {workdir}\n"
                    "Ctrl-C stops both.",
                    flush=True,
                )
                exited = stack.wait()
                log.error("%s exited on its own; stopping the rest", exited)
                return 1
            except (MonitorError, PrometheusConfigError) as exc:
                log.error("%s", exc)
                return 1
            finally:
                stack.stop()
        return 0


def default_torchserve_metrics(backend: str | None) -> str | None:
    """``host:port`` of DIGITS_TORCHSERVE_METRICS_URL when the gateway uses TorchServe, else no target."""
    from yarl import URL

    from service.core.settings import get_settings

    settings = get_settings()
    if (backend or settings.model.backend) != "torchserve":
        return None
    url = URL(OpsSettings().torchserve_metrics_url)
    return f"{url.host}:{url.port}"


def _handle(args: argparse.Namespace) -> int:
    try:
        options = MonitorOptions(
            gateway_port=args.gateway_port,
            prometheus_port=args.prometheus_port,
            start_gateway=not args.no_gateway,
            backend=args.backend,
            torchserve_metrics=args.torchserve_metrics or default_torchserve_metrics(args.backend),
            scrape_interval=args.scrape_interval,
            config=args.config,
            prometheus_binary=args.prometheus_binary,
            ready_timeout_seconds=args.ready_timeout,
        )
    except MonitorError as exc:
        log.error("%s", exc)
        return 2
    return run_monitor(options, args.data_dir)


def add_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "monitor",
        help="run the gateway and a local Prometheus with deploy/prometheus (no Docker needed)",
        description=(
            "Starts `digits serve` on 127.0.0.1 (settings from DIGITS_* variables, as for serve) and Prometheus "
            "with deploy/prometheus/prometheus.yml and its alert rules, the scrape targets rewritten to this "
            "machine's addresses. Ctrl-C stops both."
        ),
    )
    parser.add_argument("--gateway-port", type=int, default=8000, help="port of the gateway (default 8000)")
    parser.add_argument("--prometheus-port", type=int, default=9090, help="port of Prometheus (default 9090)")
    parser.add_argument(
        "--no-gateway", action="store_true", help="do not start a gateway: scrape one already on --gateway-port"
    )
    parser.add_argument(
        "--backend",
        choices=["embedded", "torchserve"],
        help="as for digits serve: torchserve starts a local TorchServe too (default: $DIGITS_BACKEND)",
    )
    parser.add_argument(
        "--torchserve-metrics",
        metavar="HOST:PORT",
        help="TorchServe's metrics address to scrape (default: that of $DIGITS_TORCHSERVE_METRICS_URL when the "
        "backend is torchserve, else none)",
    )
    parser.add_argument(
        "--scrape-interval", metavar="DURATION", help="replace the config's scrape and rule intervals, e.g. 1s"
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_PROMETHEUS_CONFIG, help="Prometheus configuration")
    parser.add_argument("--data-dir", type=Path, help="keep Prometheus's config and data here (default: a temp dir)")
    parser.add_argument("--prometheus-binary", default="prometheus", help="Prometheus executable (default: on PATH)")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for each to be ready")
    parser.set_defaults(handler=_handle)
