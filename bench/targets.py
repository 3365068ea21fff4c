"""What the benchmark measures: small objects that start, take a workload at N connections, and stop.

Every HTTP target is a real server process on a loopback port, driven by ``wrk`` from
outside; before it is measured, one request of each workload is sent and its answer
checked (the right label, or for the echo the same body back). The model loop is the
exception: no server, the model called in a loop in its own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.peers_venv import default_venv
from bench.previous import REPO, PreviousError, export
from bench.results import Measurement
from bench.wrk import Wrk
from loadtest.checks import prediction_problem
from loadtest.processes import CpuMeter
from loadtest.samples import Sample
from loadtest.workloads import HttpRequest, Workload, predict_requests
from model.settings import DEFAULT_ARTIFACT, DEFAULT_REPOSITORY
from ops.local_servers import ServerProcess, free_port
from service.core.serving_state import ServingState, StateStore
from service.core.traffic import TrafficPolicy


class TargetError(RuntimeError):
    """A target could not start or answered wrongly; the benchmark records it and goes on."""


@dataclass(frozen=True)
class BenchContext:
    """What every target is started and measured with."""

    artifact: Path
    samples: Sequence[Sample]
    log_dir: Path
    wrk: Wrk
    duration_s: int
    warmup_s: int
    torch_threads: int
    http_workers: int = 1  # processes of the echo, naive and gateway servers; model processes of the peers
    python: str = sys.executable
    peers_venv: Path = field(default_factory=default_venv)  # LitServe's and BentoML's (bench.peers_venv)
    previous_ref: str | None = None  # the git ref gateway-previous and model-loop-previous-release run


class Target(ABC):
    name: str
    description: str

    def supports(self, workload: Workload) -> str | None:
        """Why this target cannot take ``workload``, or ``None`` when it can."""
        return None

    @abstractmethod
    def start(self, context: BenchContext) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    @abstractmethod
    def measure(self, workload: Workload, connections: int, context: BenchContext) -> Measurement: ...


class HttpTarget(Target):
    """A server driven by wrk; subclasses say how to start it and what requests it takes."""

    base_url = ""
    speaks_oip = False  # the Open Inference Protocol (/v2) is the gateway's; the peers speak /v1 only

    def supports(self, workload: Workload) -> str | None:
        if workload is Workload.oip and not self.speaks_oip:
            return "speaks /v1 only, not the Open Inference Protocol"
        return None

    def requests(self, workload: Workload, samples: Sequence[Sample]) -> list[HttpRequest]:
        return predict_requests(workload, samples)

    def check(self, request: HttpRequest, status: int, body: bytes) -> str | None:
        """Why this answer is wrong, or ``None``."""
        return prediction_problem(status, body, [request.label])

    @abstractmethod
    def server_pids(self) -> list[int]: ...

    def probe(self, request: HttpRequest) -> None:
        sent = urllib.request.Request(
            self.base_url + request.path,
            data=request.body,
            method=request.method,
            headers={"Content-Type": request.content_type, **dict(request.headers)},
        )
        try:
            with urllib.request.urlopen(sent, timeout=30) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        except OSError as exc:
            raise TargetError(f"{self.name}: probe request failed: {exc}") from exc
        problem = self.check(request, status, body)
        if problem is not None:
            raise TargetError(f"{self.name}: wrong answer to a {request.path} probe: {problem}")

    def measure(self, workload: Workload, connections: int, context: BenchContext) -> Measurement:
        requests = self.requests(workload, context.samples)
        self.probe(requests[0])
        if context.warmup_s > 0:
            context.wrk.run(self.base_url, requests, connections, context.warmup_s)
        meter = CpuMeter(self.server_pids())
        meter.start()
        result = context.wrk.run(self.base_url, requests, connections, context.duration_s)
        server_cpu = meter.stop()
        return Measurement(
            target=self.name,
            workload=workload.value,
            connections=connections,
            requests=result.requests,
            duration_s=result.duration_s,
            rps=result.rps,
            errors=result.errors,
            p50_ms=result.p50_ms,
            p95_ms=result.p95_ms,
            p99_ms=result.p99_ms,
            max_ms=result.max_ms,
            server_cpu=server_cpu,
            generator_cpu=result.generator_cpu,
        )


class ProcessTarget(HttpTarget):
    """One server command on a free port, ready when ``ready_path`` answers 200."""

    ready_path = "/readyz"

    def __init__(self) -> None:
        self._server: ServerProcess | None = None

    @abstractmethod
    def command(self, context: BenchContext, port: int) -> list[str]: ...

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {}

    def workdir(self, context: BenchContext) -> Path | None:
        """Where the command runs; ``None``: here."""
        return None

    def start(self, context: BenchContext) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self._server = ServerProcess(
            self.name,
            self.command(context, port),
            self.env(context, port),
            context.log_dir,
            cwd=self.workdir(context),
            url=self.base_url,
        )
        try:
            self._server.start(self.base_url + self.ready_path)
        except (RuntimeError, TimeoutError) as exc:
            raise TargetError(str(exc)) from exc

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def server_pids(self) -> list[int]:
        return [self._server.pid] if self._server is not None else []


def uvicorn_command(context: BenchContext, app: str, port: int) -> list[str]:
    """The peers run under uvicorn with the gateway's choices: uvloop, httptools, no access log, as many workers."""
    return [
        context.python, "-m", "uvicorn", app,
        "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning", "--workers", str(context.http_workers),
    ]  # fmt: skip


# The benchmark ships in no wheel: its own processes import it from this checkout, wherever they start.
CHECKOUT_ON_PATH = {"PYTHONPATH": str(REPO)}


class EchoTarget(ProcessTarget):
    name = "fastapi-echo"
    description = "bare FastAPI endpoint returning the request body (the HTTP ceiling, no model)"

    def command(self, context: BenchContext, port: int) -> list[str]:
        return uvicorn_command(context, "bench.peers.echo_app:app", port)

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return CHECKOUT_ON_PATH

    def check(self, request: HttpRequest, status: int, body: bytes) -> str | None:
        return None if status == 200 and body == request.body else f"HTTP {status}, body not echoed"


class NaiveTarget(ProcessTarget):
    name = "fastapi-naive"
    description = "FastAPI endpoint calling the TorchScript model once per request (no batching)"

    def command(self, context: BenchContext, port: int) -> list[str]:
        return uvicorn_command(context, "bench.peers.naive_app:app", port)

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {
            **CHECKOUT_ON_PATH,
            "DIGITS_ARTIFACT": str(context.artifact),
            "DIGITS_TORCH_THREADS": str(context.torch_threads),
        }


def gateway_env(context: BenchContext, port: int) -> dict[str, str]:
    return {
        "DIGITS_HOST": "127.0.0.1",
        "DIGITS_PORT": str(port),
        "DIGITS_ARTIFACT": str(context.artifact),
        "DIGITS_TORCH_THREADS": str(context.torch_threads),
        "DIGITS_WORKERS": str(context.http_workers),
    }


class GatewayTarget(ProcessTarget):
    name = "gateway"
    description = "the digits gateway (`digits serve`), embedded backend, dynamic batching"
    speaks_oip = True

    def command(self, context: BenchContext, port: int) -> list[str]:
        return [context.python, "-m", "digits_cli.main", "serve"]

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {**gateway_env(context, port), "DIGITS_BACKEND": "embedded"}


class DriftOffGatewayTarget(GatewayTarget):
    """The gateway with drift monitoring off too: tracing, shadow traffic and payload logging are off by default, so
    everything left is what every request pays whatever the settings (stage and per-version telemetry)."""

    name = "gateway-drift-off"
    description = (
        "the gateway with DIGITS_DRIFT_MONITORING=false: every optional feature off, against `gateway-previous` the "
        "cost of what no setting turns off"
    )

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {**super().env(context, port), "DIGITS_DRIFT_MONITORING": "false"}


class ShadowGatewayTarget(GatewayTarget):
    """The gateway serving the shipped repository with a candidate in shadow: every request stable answers is also
    sent to the candidate, off the response path (dropped when stable is busy or over the shadow's share)."""

    name = "gateway-shadow"
    description = (
        "the gateway serving model/versions, stable 2.1.0 with 2.0.0 in shadow at 100 % sampling: what shadow "
        "traffic costs the stable path"
    )
    stable, candidate = "2.1.0", "2.0.0"

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        state_dir = context.log_dir / f"{self.name}-state"
        store = StateStore(state_dir)
        policy = TrafficPolicy(stable=self.stable, candidate=self.candidate, shadow=1.0)
        initial = ServingState(versions=[self.stable, self.candidate], policy=policy)
        with store.update(initial) as state:
            state.versions, state.policy = initial.versions, initial.policy
        return {
            **super().env(context, port),
            "DIGITS_MODEL_REPOSITORY": str(DEFAULT_REPOSITORY),
            "DIGITS_MODEL_VERSION": self.stable,
            "DIGITS_STATE_DIR": str(state_dir),
        }


class TracedGatewayTarget(GatewayTarget):
    name = "gateway-traced"
    description = (
        "the gateway with OpenTelemetry tracing on, 1 % of requests sampled (parentbased_traceidratio 0.01), "
        "exported over OTLP/HTTP to a local receiver (ops/otlp_receiver.py): the cost of tracing against `gateway`"
    )
    speaks_oip = True
    sampled = "0.01"

    def __init__(self) -> None:
        super().__init__()
        self._receiver: ServerProcess | None = None
        self._receiver_port = 0

    receiver_niceness = 0

    def start(self, context: BenchContext) -> None:
        self._receiver_port = free_port()
        command = [context.python, "-m", "ops.otlp_receiver", "--port", str(self._receiver_port)]
        if self.receiver_niceness:
            command = ["nice", "-n", str(self.receiver_niceness), *command]
        self._receiver = ServerProcess(f"{self.name}-otlp-receiver", command, CHECKOUT_ON_PATH, context.log_dir)
        self._receiver.start(None)
        super().start(context)

    def stop(self) -> None:
        super().stop()
        if self._receiver is not None:
            self._receiver.stop()
            self._receiver = None

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {
            **super().env(context, port),
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{self._receiver_port}",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": self.sampled,
        }


class UnsampledTracedGatewayTarget(TracedGatewayTarget):
    """As ``gateway-traced``, sampling nothing: what turning tracing on costs every request, apart from the spans."""

    name = "gateway-traced-unsampled"
    description = (
        "the gateway with tracing on and nothing sampled (parentbased_traceidratio 0): the cost that every request "
        "pays once tracing is on, without the sampled ones' spans and their export"
    )
    sampled = "0"


class TracedNiceReceiverGatewayTarget(TracedGatewayTarget):
    """As ``gateway-traced``, with the receiver at the lowest CPU priority: on a 2-core machine the receiver decoding
    every span competes with the gateway for the same cores, which a collector on another machine would not."""

    name = "gateway-traced-nice-receiver"
    description = (
        "the gateway with tracing at 1 %, its OTLP receiver under `nice -n 19`: the gateway's own cost of tracing, "
        "with the receiver's decoding out of its way"
    )
    receiver_niceness = 19


class PreviousGatewayTarget(GatewayTarget):
    name = "gateway-previous"
    description = (
        "the digits gateway as of an earlier commit (`--previous-ref`), embedded backend, same artifact and "
        "processes: a regression shows against `gateway`"
    )
    speaks_oip = True

    def workdir(self, context: BenchContext) -> Path | None:
        return previous_tree(self.name, context)


class PreviousReleaseGatewayTarget(PreviousGatewayTarget):
    name = "gateway-previous-release"
    description = (
        "the gateway of `--previous-ref` serving that commit's own artifact: the previous release as its users ran "
        "it, serving code and model together"
    )

    def env(self, context: BenchContext, port: int) -> dict[str, str]:
        return {**super().env(context, port), "DIGITS_ARTIFACT": str(previous_release_artifact(self.name, context))}


def previous_tree(target: str, context: BenchContext) -> Path:
    """The packages of ``--previous-ref``, exported into ``target``'s folder of the run."""
    if context.previous_ref is None:
        raise TargetError(f"{target}: name the commit it runs with --previous-ref REF")
    try:
        return export(context.previous_ref, context.log_dir / target)
    except PreviousError as exc:
        raise TargetError(f"{target}: {exc}") from exc


def previous_release_artifact(target: str, context: BenchContext) -> Path:
    """The artifact ``--previous-ref`` shipped, in ``target``'s export of it."""
    return previous_tree(target, context) / DEFAULT_ARTIFACT.resolve().relative_to(REPO)


class ModelLoopTarget(Target):
    """The raw model in a loop: the ceiling. ``connections`` becomes the batch size of a call."""

    name = "model-loop"
    description = (
        "TorchScript model in a plain loop, no HTTP (images/s; batch size = connections; "
        "includes the workload's decoding and preprocessing)"
    )

    def start(self, context: BenchContext) -> None:
        return None

    def stop(self) -> None:
        return None

    def artifact(self, context: BenchContext) -> Path:
        return context.artifact

    def workdir(self, context: BenchContext) -> Path | None:
        """Where the loop runs and its code is imported from: ``None`` for this checkout."""
        return None

    def measure(self, workload: Workload, connections: int, context: BenchContext) -> Measurement:
        tree = self.workdir(context)
        command = [
            context.python, "-m", model_loop_module(tree),
            "--artifact", str(self.artifact(context)),
            "--workload", workload.value,
            "--batch-size", str(connections),
            "--duration", str(context.duration_s),
            "--warmup", str(max(context.warmup_s, 0.5)),
            "--torch-threads", str(context.torch_threads),
        ]  # fmt: skip
        env = {**os.environ, **CHECKOUT_ON_PATH} if tree is None else None
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tree, env=env)
        try:
            out, err = process.communicate(timeout=context.duration_s + context.warmup_s + 120)
        except subprocess.TimeoutExpired as exc:
            process.kill()
            process.communicate()
            raise TargetError(f"{self.name}: the loop did not end in time") from exc
        if process.returncode != 0:
            raise TargetError(f"{self.name}: exited with {process.returncode}: {err.decode(errors='replace')[-1500:]}")
        result = orjson.loads(out.splitlines()[-1])
        return Measurement(
            target=self.name,
            workload=workload.value,
            connections=connections,
            requests=int(result["images"]),
            duration_s=float(result["duration_s"]),
            rps=float(result["images_per_s"]),
            errors=0,
            p50_ms=float(result["p50_ms"]),
            p95_ms=float(result["p95_ms"]),
            p99_ms=float(result["p99_ms"]),
            max_ms=float(result["max_ms"]),
            server_cpu=float(result["cpu_s"]) / float(result["duration_s"]),
            generator_cpu=None,
        )


def model_loop_module(tree: Path | None) -> str:
    """The model loop's module in an exported ``tree``, or in this checkout (``None``): older commits kept it in
    ``loadtest/``."""
    if tree is None or (tree / "bench" / "model_loop.py").is_file():
        return "bench.model_loop"
    return "loadtest.model_loop"
