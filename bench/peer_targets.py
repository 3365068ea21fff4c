"""LitServe and BentoML in the benchmark: the servers users shop for instead, each with its own dynamic batching.

Both run in the peers' virtualenv (:mod:`bench.peers_venv`, made on first use), import the project from this
repository, and serve the benchmarked artifact through the gateway's pipeline and ``ModelRunner``
(``bench/peers/digits_model.py``): only the serving framework differs. Each has as many model processes as the
gateway has processes (``--workers``) and takes the /v1 pixels request and the PNG upload as they are.

Their knobs were tuned on this project's 2-CPU machine with short runs of ``digits benchmark`` (pixels and PNG,
1 and 32 connections); the settings below were the best found (README, "Side-by-side benchmark").
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from pathlib import Path

from bench.peers_venv import REQUIREMENTS, PeersVenvError, ensure_peers_venv
from bench.targets import BenchContext, ProcessTarget, TargetError
from loadtest.processes import process_tree

REPO = Path(__file__).resolve().parent.parent


def pinned_version(package: str) -> str:
    found = re.search(rf"^{re.escape(package)}==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    return found.group(1) if found else "?"


class PeerTarget(ProcessTarget):
    """A server of the peers' virtualenv; stopping it ends every process it started."""

    def __init__(self) -> None:
        super().__init__()
        self.python = ""

    def start(self, context: BenchContext) -> None:
        try:
            self.python = str(ensure_peers_venv(context.peers_venv))
        except PeersVenvError as exc:
            raise TargetError(f"{self.name}: {exc}") from exc
        super().start(context)

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {
            "PYTHONPATH": str(REPO),
            "DIGITS_ARTIFACT": str(context.artifact),
            "DIGITS_TORCH_THREADS": str(context.torch_threads),
        }

    def stop(self) -> None:
        tree = [pid for root in self.server_pids() for pid in process_tree(root)]
        super().stop()
        for pid in tree:  # workers that outlived their parent
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class LitServeTarget(PeerTarget):
    name = "litserve"
    max_batch_size = 64
    batch_timeout_ms = 1.0
    api_servers: int | None = None  # None: as many as inference workers (LitServe's default)
    fast_queue = False  # ZeroMQ between the API servers and the workers instead of multiprocessing queues
    ready_path = "/health"
    description = (
        f"LitServe {pinned_version('litserve')} (bench/peers/litserve_app.py): as many API server and "
        f"inference worker processes as the gateway has processes, max_batch_size {max_batch_size}, "
        f"batch_timeout {batch_timeout_ms:g} ms"
    )

    def command(self, context: BenchContext, port: int) -> list[str]:
        return [
            self.python, "-m", "bench.peers.litserve_app", "--port", str(port),
            "--workers", str(context.http_workers),
            "--max-batch-size", str(self.max_batch_size), "--batch-timeout-ms", str(self.batch_timeout_ms),
            *(["--api-servers", str(self.api_servers)] if self.api_servers else []),
            *(["--fast-queue"] if self.fast_queue else []),
        ]  # fmt: skip


class BentoMLTarget(PeerTarget):
    name = "bentoml"
    max_batch_size = 64
    max_latency_ms = 1000
    ready_path = "/readyz"
    description = (
        f"BentoML {pinned_version('bentoml')} (bench/peers/bentoml_app.py): an HTTP service calling a batchable "
        f"model service (bentoml.depends), each with as many workers as the gateway has processes, "
        f"max_batch_size {max_batch_size}, max_latency_ms {max_latency_ms}, no access log"
    )

    def command(self, context: BenchContext, port: int) -> list[str]:
        return [
            self.python, "-m", "bentoml", "serve", "bench.peers.bentoml_app:Digits",
            "--working-dir", str(REPO), "--host", "127.0.0.1", "--port", str(port),
        ]  # fmt: skip

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {
            **super().env(context, port),
            "BENTOML_HOME": str(context.log_dir / "bentoml-home"),
            "BENTOML_DO_NOT_TRACK": "True",
            "DIGITS_BENTOML_WORKERS": str(context.http_workers),
            "DIGITS_BENTOML_MAX_BATCH_SIZE": str(self.max_batch_size),
            "DIGITS_BENTOML_MAX_LATENCY_MS": str(self.max_latency_ms),
        }
