"""gRPC binary against REST binary and REST JSON, side by side, on one real ``digits serve`` process.

The load comes from Triton's own clients, not from our code: ``tritonclient.grpc.aio`` for gRPC and
``tritonclient.http.aio`` for both REST variants, each connection a client of its own running one request after
another (a closed loop), spread over several processes so that the client's Python is not the only bottleneck.
Every request is one 28x28 image of FP32 pixels asking for ``probabilities`` and ``label``.

    python -m bench.grpc_bench [--seconds 8] [--connections 1 32] [--processes 4]

Prints a Markdown table: requests/s and latency percentiles per transport and connection count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ops.local_servers import ServerProcess, free_port

MODEL = "digits"
TRANSPORTS = ("gRPC binary", "REST binary", "REST JSON")
PIXELS = np.zeros((1, 28, 28), np.float32)
PIXELS[0, 8:20, 12:16] = 255.0


@dataclass(frozen=True)
class Job:
    transport: str
    address: str  # host:port of the gRPC or the HTTP server
    clients: int
    seconds: float


Infer = Callable[[], Awaitable[object]]


async def _grpc_client(job: Job) -> tuple[Infer, Callable[[], Awaitable[None]]]:
    import tritonclient.grpc as grpc_client
    import tritonclient.grpc.aio as grpc_aio

    # A subchannel pool of its own: each client opens its own connection rather than sharing the process's.
    client = grpc_aio.InferenceServerClient(job.address, channel_args=[("grpc.use_local_subchannel_pool", 1)])
    tensor = grpc_client.InferInput("pixels", [1, 28, 28], "FP32")
    tensor.set_data_from_numpy(PIXELS)
    outputs = [grpc_client.InferRequestedOutput(name) for name in ("probabilities", "label")]
    return lambda: client.infer(MODEL, [tensor], outputs=outputs), client.close


async def _http_client(job: Job) -> tuple[Infer, Callable[[], Awaitable[None]]]:
    import tritonclient.http as http_client
    import tritonclient.http.aio as http_aio

    binary = job.transport == "REST binary"
    client = http_aio.InferenceServerClient(job.address, conn_limit=1)
    tensor = http_client.InferInput("pixels", [1, 28, 28], "FP32")
    tensor.set_data_from_numpy(PIXELS, binary_data=binary)
    outputs = [http_client.InferRequestedOutput(name, binary_data=binary) for name in ("probabilities", "label")]
    return lambda: client.infer(MODEL, [tensor], outputs=outputs), client.close


async def _loop(infer: Infer, until: float, latencies: list[float]) -> None:
    while (started := time.perf_counter()) < until:
        await infer()
        latencies.append(time.perf_counter() - started)


async def _run_clients(job: Job, start_at: float) -> list[float]:
    make = _grpc_client if job.transport == "gRPC binary" else _http_client
    clients = [await make(job) for _ in range(job.clients)]
    for infer, _ in clients:
        await infer()  # connected, and the client's first-call costs paid, before the clock starts
    await asyncio.sleep(max(0.0, start_at - time.time()))
    until = time.perf_counter() + job.seconds
    latencies: list[float] = []
    try:
        await asyncio.gather(*(_loop(infer, until, latencies) for infer, _ in clients))
    finally:
        for _, close in clients:
            await close()
    return latencies


def _process(job: Job, start_at: float) -> list[float]:
    return asyncio.run(_run_clients(job, start_at))


def measure(transport: str, address: str, connections: int, processes: int, seconds: float) -> dict[str, float]:
    processes = min(processes, connections)
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    start_at = time.time() + 5.0  # every process has connected its clients by then
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        results = pool.starmap(_process, [(Job(transport, address, share, seconds), start_at) for share in shares])
    latencies = np.array([value for result in results for value in result])
    return {
        "rps": len(latencies) / seconds,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
    }


@contextlib.contextmanager
def _gateway(log_dir: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = {"DIGITS_HOST": "127.0.0.1", "DIGITS_PORT": str(port), **env}
    server = ServerProcess("gateway", [sys.executable, "-m", "digits_cli.main", "serve"], full_env, log_dir, url=url)
    server.start(f"{url}/readyz", 120)
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--processes", type=int, default=4, help="client processes the connections are spread over")
    args = parser.parse_args()
    grpc_port = free_port()
    env = {"DIGITS_GRPC_PORT": str(grpc_port), "DIGITS_DEVICE": "cpu"}
    with tempfile.TemporaryDirectory() as logs, _gateway(Path(logs), env) as server:
        addresses = {"gRPC binary": f"127.0.0.1:{grpc_port}"}
        http_address = server.url.removeprefix("http://")
        rows = []
        for connections in args.connections:
            for transport in TRANSPORTS:
                address = addresses.get(transport, http_address)
                measure(transport, address, connections, args.processes, 1.0)  # warm-up
                result = measure(transport, address, connections, args.processes, args.seconds)
                rows.append((transport, connections, result))
                print(f"{transport} x{connections}: {result['rps']:.0f} req/s", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, {os.cpu_count()} CPUs, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) at the end; "
        f"{args.seconds:.0f} s per row, clients over {args.processes} processes\n"
    )
    print("| transport | connections | req/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for transport, connections, result in rows:
        print(
            f"| {transport} | {connections} | {result['rps']:.0f} | {result['p50_ms']:.2f} | {result['p99_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
