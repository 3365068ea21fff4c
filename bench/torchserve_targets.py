"""TorchServe in the benchmark: direct, and behind the gateway (``DIGITS_BACKEND=torchserve``).

Both serve an archive ``digits export-mar`` builds from the benchmarked artifact, with the
shipped ``deploy/torchserve/config.properties`` (one single-threaded worker per core). Batching differs:
TorchServe direct batches single-image requests itself; behind the gateway, which sends whole batches,
the shipped model-config.yaml does not batch a second time. TorchServe's handler takes the gateway's JSON
``pixels`` body with ``preprocess=none`` as it is; it decodes no images (PNG decoding and
``auto`` preprocessing live in the gateway), so TorchServe direct takes the pixels workload only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from bench.targets import BenchContext, GatewayTarget, HttpTarget, TargetError, gateway_env
from loadtest.samples import Sample
from loadtest.workloads import HttpRequest, Workload, predict_requests
from ops.torchserve.archive import DEFAULT_MODEL_CONFIG

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ops.torchserve.launcher import TorchServe

MODEL_NAME = "digits"
# TorchServe direct takes one image per request: it gets TorchServe's own batching. The gateway sends whole
# batches and gets the shipped config (deploy/torchserve/model-config.yaml), which does not batch them again.
DIRECT_MODEL_CONFIG = Path(__file__).with_name("torchserve-direct-model-config.yaml")


def launch_torchserve(context: BenchContext, name: str, model_config: Path) -> TorchServe:
    """Build the archive with ``model_config`` (once) and start TorchServe on free ports; ready when this returns."""
    try:
        from ops.torchserve.archive import build_archive
        from ops.torchserve.launcher import TorchServe, TorchServeConfig
    except ImportError as exc:
        raise TargetError(f"TorchServe is not installed ({exc}); pip install 'digits[torchserve]'") from exc
    try:
        store = context.log_dir / name / "model-store"
        mar = store / f"{MODEL_NAME}.mar"
        if not mar.is_file():  # once per run: every round starts TorchServe again
            build_archive(context.artifact, store, model_name=MODEL_NAME, model_config=model_config)
        config = TorchServeConfig.on_free_ports(
            mar, context.log_dir / name, model_name=MODEL_NAME, torch_threads=context.torch_threads
        )
        torchserve = TorchServe(config)
        torchserve.start()
    except (OSError, RuntimeError, ValueError) as exc:
        raise TargetError(f"{name}: TorchServe did not start: {exc}") from exc
    try:
        torchserve.wait_ready(180)
    except (RuntimeError, TimeoutError) as exc:
        torchserve.stop()
        raise TargetError(f"{name}: TorchServe did not get ready: {exc}") from exc
    return torchserve


def _batching(model_config: Path) -> str:
    config = yaml.safe_load(model_config.read_text())
    return f"batchSize {config['batchSize']}, maxBatchDelay {config['maxBatchDelay']} ms"


class TorchServeTarget(HttpTarget):
    name = "torchserve"
    description = (
        "TorchServe direct: our handler in TorchServe's Python workers (one per core, "
        f"{_batching(DIRECT_MODEL_CONFIG)}), JSON pixels only"
    )

    def __init__(self) -> None:
        self._torchserve: TorchServe | None = None

    def supports(self, workload: Workload) -> str | None:
        if workload is Workload.png:
            return "TorchServe's handler takes 28x28 pixels or tensors; decoding images and `auto` are the gateway's"
        return super().supports(workload)

    def requests(self, workload: Workload, samples: Sequence[Sample]) -> list[HttpRequest]:
        return predict_requests(workload, samples, path=f"/predictions/{MODEL_NAME}")

    def start(self, context: BenchContext) -> None:
        self._torchserve = launch_torchserve(context, self.name, DIRECT_MODEL_CONFIG)
        self.base_url = self._torchserve.inference_url

    def stop(self) -> None:
        if self._torchserve is not None:
            self._torchserve.stop()
            self._torchserve = None

    def server_pids(self) -> list[int]:
        pid = self._torchserve.pid if self._torchserve is not None else None
        return [pid] if pid is not None else []


class GatewayOverTorchServeTarget(GatewayTarget):
    name = "gateway-torchserve"
    description = (
        "the digits gateway with DIGITS_BACKEND=torchserve: it batches and forwards tensors to TorchServe "
        f"({_batching(DEFAULT_MODEL_CONFIG)}: no second batching)"
    )

    def __init__(self) -> None:
        super().__init__()
        self._torchserve: TorchServe | None = None

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        assert self._torchserve is not None, "TorchServe starts first"
        return {
            **gateway_env(context, port),
            "DIGITS_BACKEND": "torchserve",
            "DIGITS_TORCHSERVE_URL": self._torchserve.inference_url,
            "DIGITS_TORCHSERVE_MANAGEMENT_URL": self._torchserve.management_url,
            "DIGITS_TORCHSERVE_MODEL": MODEL_NAME,
        }

    def start(self, context: BenchContext) -> None:
        self._torchserve = launch_torchserve(context, self.name, DEFAULT_MODEL_CONFIG)
        try:
            super().start(context)
        except TargetError:
            self.stop()
            raise

    def stop(self) -> None:
        super().stop()
        if self._torchserve is not None:
            self._torchserve.stop()
            self._torchserve = None

    def server_pids(self) -> list[int]:
        pid = self._torchserve.pid if self._torchserve is not None else None
        return super().server_pids() + ([pid] if pid is not None else [])
