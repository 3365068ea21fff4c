"""TorchServe in the benchmark: direct, and behind the gateway (``DIGITS_BACKEND=torchserve``).

Both serve the archive ``digits export-mar`` builds from the benchmarked artifact, with the
shipped ``deploy/torchserve`` configuration (TorchServe batching as in its model-config.yaml;
one single-threaded worker per core). TorchServe's handler takes the gateway's JSON
``pixels`` body with ``preprocess=none`` as it is; it decodes no images (PNG decoding and
``auto`` preprocessing live in the gateway), so TorchServe direct takes the pixels workload only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import yaml

from loadtest.samples import Sample
from loadtest.targets import BenchContext, GatewayTarget, HttpTarget, TargetError, gateway_env
from loadtest.workloads import HttpRequest, Workload, predict_requests
from service.local_servers import free_ports
from service.torchserve.archive import DEFAULT_MODEL_CONFIG

if TYPE_CHECKING:
    from collections.abc import Sequence

    from service.torchserve.launcher import TorchServe

MODEL_NAME = "digits"


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables for the processes started inside the block."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def launch_torchserve(context: BenchContext, name: str) -> TorchServe:
    """Build the archive (once per run) and start TorchServe on free ports; ready when this returns."""
    try:
        from service.torchserve.archive import build_archive
        from service.torchserve.launcher import TorchServe, TorchServeConfig
    except ImportError as exc:
        raise TargetError(f"TorchServe is not installed ({exc}); pip install 'digits[torchserve]'") from exc
    store = context.log_dir / "model-store"
    mar = store / f"{MODEL_NAME}.mar"
    try:
        if not mar.is_file():
            build_archive(context.artifact, store, model_name=MODEL_NAME)
        inference, management, metrics, grpc_inference, grpc_management = free_ports(5)
        config = TorchServeConfig(
            mar_path=mar,
            log_dir=context.log_dir / name,
            inference_port=inference,
            management_port=management,
            metrics_port=metrics,
            model_name=MODEL_NAME,
            torch_threads=context.torch_threads,
        )
        torchserve = TorchServe(config)
        # TorchServe also opens gRPC ports (7070, 7071 by default) that the launcher does not choose; free ones
        # let this instance run beside any other. It reads TS_* variables from the environment it inherits.
        with environment(TS_GRPC_INFERENCE_PORT=str(grpc_inference), TS_GRPC_MANAGEMENT_PORT=str(grpc_management)):
            torchserve.start()
    except (OSError, RuntimeError, ValueError) as exc:
        raise TargetError(f"{name}: TorchServe did not start: {exc}") from exc
    try:
        torchserve.wait_ready(180)
    except (RuntimeError, TimeoutError) as exc:
        torchserve.stop()
        raise TargetError(f"{name}: TorchServe did not get ready: {exc}") from exc
    return torchserve


def _batching() -> str:
    config = yaml.safe_load(DEFAULT_MODEL_CONFIG.read_text())
    return f"batchSize {config['batchSize']}, maxBatchDelay {config['maxBatchDelay']} ms"


class TorchServeTarget(HttpTarget):
    name = "torchserve"
    description = (
        f"TorchServe direct: our handler in TorchServe's Python workers (one per core, {_batching()}), JSON pixels only"
    )

    def __init__(self) -> None:
        self._torchserve: TorchServe | None = None

    def supports(self, workload: Workload) -> str | None:
        if workload is Workload.png:
            return "TorchServe's handler takes 28x28 pixels or tensors; decoding images and `auto` are the gateway's"
        return None

    def requests(self, workload: Workload, samples: Sequence[Sample]) -> list[HttpRequest]:
        return predict_requests(workload, samples, path=f"/predictions/{MODEL_NAME}")

    def start(self, context: BenchContext) -> None:
        self._torchserve = launch_torchserve(context, self.name)
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
    description = "the digits gateway with DIGITS_BACKEND=torchserve: it batches and forwards tensors to TorchServe"

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
        self._torchserve = launch_torchserve(context, self.name)
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
