"""The TorchServe side of the ``digits`` command.

- ``digits export-mar``: build ``digits.mar`` from the TorchScript artifact.
- ``digits torchserve``: run TorchServe alone, in the foreground, with our archive and config.
- ``digits serve --backend torchserve``: TorchServe first, then the gateway in front of it
  (:func:`serve_with_torchserve`); SIGTERM or SIGINT stops the gateway first, then TorchServe.

Addresses come from the gateway's settings (``DIGITS_TORCHSERVE_URL``, ``..._MANAGEMENT_URL``,
``..._METRICS_URL``), so the gateway and the TorchServe started here always agree.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from model.settings import DEFAULT_ARTIFACT
from ops.settings import OpsSettings
from ops.signals import stop_on_signals

if TYPE_CHECKING:
    from ops.torchserve.launcher import TorchServe, TorchServeConfig
    from service.core.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_MODEL_STORE = Path("build/model-store")


def launcher_config(settings: Settings, ops: OpsSettings, mar: Path) -> TorchServeConfig:
    """TorchServe on this machine at the addresses the gateway's settings name."""
    from yarl import URL

    from ops.torchserve.launcher import TorchServeConfig

    urls = {
        "DIGITS_TORCHSERVE_URL": URL(settings.torchserve.torchserve_url),
        "DIGITS_TORCHSERVE_MANAGEMENT_URL": URL(settings.torchserve.torchserve_management_url),
        "DIGITS_TORCHSERVE_METRICS_URL": URL(ops.torchserve_metrics_url),
    }
    if len({url.host for url in urls.values()}) != 1 or any(url.port is None for url in urls.values()):
        named = ", ".join(f"{name}={url}" for name, url in urls.items())
        raise ValueError(f"to start TorchServe here, the TorchServe URLs need one host and explicit ports: {named}")
    inference, management, metrics = urls.values()
    return TorchServeConfig(
        mar_path=mar,
        log_dir=ops.torchserve_log_dir,
        host=str(inference.host),
        inference_port=int(inference.port or 0),
        management_port=int(management.port or 0),
        metrics_port=int(metrics.port or 0),
        model_name=settings.torchserve.torchserve_model,
        workers=ops.torchserve_workers,
        start_timeout_seconds=ops.torchserve_start_timeout_seconds,
    )


@contextmanager
def local_torchserve(settings: Settings, ops: OpsSettings) -> Iterator[TorchServe]:
    """A ready TorchServe serving DIGITS_TORCHSERVE_MAR, or an archive built from DIGITS_ARTIFACT for this run."""
    from ops.torchserve.archive import build_archive
    from ops.torchserve.launcher import TorchServe

    with ExitStack() as stack:
        mar = ops.torchserve_mar
        if mar is None:
            store = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="digits-model-store-")))
            mar = build_archive(settings.model.artifact, store, model_name=settings.torchserve.torchserve_model)
        torchserve = stack.enter_context(TorchServe(launcher_config(settings, ops, mar)))
        log.info("TorchServe ready: %s (logs in %s)", torchserve.predict_url, ops.torchserve_log_dir)
        yield torchserve


def serve_with_torchserve(settings: Settings, run_gateway: Callable[[Settings], None]) -> int:
    """TorchServe, then the gateway in front of it, until SIGTERM/SIGINT; then the gateway stops first."""
    with stop_on_signals(), local_torchserve(settings, OpsSettings()):
        run_gateway(settings)
    return 0


def _export_mar(args: argparse.Namespace) -> int:
    from ops.torchserve.archive import DEFAULT_MODEL_CONFIG, build_archive

    config = args.model_config or DEFAULT_MODEL_CONFIG
    mar = build_archive(args.artifact, args.out, model_name=args.model_name, model_config=config)
    print(f"wrote {mar}")
    return 0


def _torchserve(args: argparse.Namespace) -> int:
    from service.core.settings import Settings

    overrides = {"torchserve_mar": args.mar, "torchserve_workers": args.workers}
    ops = OpsSettings(**{k: v for k, v in overrides.items() if v is not None})
    with stop_on_signals() as received, local_torchserve(Settings(), ops) as torchserve:
        code = torchserve.wait()
        log.error("TorchServe exited by itself (%s); see %s", code, ops.torchserve_log_dir)
        return 1
    return 0 if received else 1


def add_export_mar(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("export-mar", help="package the TorchScript artifact and our handler as a TorchServe .mar")
    parser.add_argument("--artifact", type=Path, default=DEFAULT_ARTIFACT, help="TorchScript file (its card beside it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_STORE, help="model store directory to write into")
    parser.add_argument("--model-name", default="digits", help="name of the model and of its .mar (default: digits)")
    parser.add_argument(
        "--model-config", type=Path, help="TorchServe model-config.yaml (default: deploy/torchserve/model-config.yaml)"
    )
    parser.set_defaults(handler=_export_mar)


def add_torchserve(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "torchserve", help="run TorchServe with our archive and config in the foreground (DIGITS_TORCHSERVE_* URLs)"
    )
    parser.add_argument("--mar", type=Path, help="archive to serve (default: $DIGITS_TORCHSERVE_MAR or built now)")
    parser.add_argument("--workers", type=int, help="workers (default: $DIGITS_TORCHSERVE_WORKERS or one per core)")
    parser.set_defaults(handler=_torchserve)
