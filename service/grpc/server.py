"""The gRPC server (grpcio's asyncio server) that serves :class:`~service.grpc.servicer.InferenceService`."""

from __future__ import annotations

import logging

import grpc

from service.grpc.servicer import InferenceService

log = logging.getLogger("uvicorn.error")


async def start_grpc_server(
    service: InferenceService, host: str, port: int, *, max_message_bytes: int, shared_port: bool
) -> grpc.aio.Server:
    """Listening on ``host``:``port`` once this returns. ``shared_port``: bind with ``SO_REUSEPORT``, as each of
    several gateway workers does (the kernel spreads connections over them); otherwise a port in use is an error,
    not a port silently shared with another server."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.so_reuseport", 1 if shared_port else 0),
    ]
    server = grpc.aio.server(options=options)
    server.add_generic_rpc_handlers((service.handler(),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    await server.start()
    log.info("gRPC (Open Inference Protocol) on %s:%d", host, bound)
    return server
