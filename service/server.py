"""Run the gateway under uvicorn (what ``digits serve`` does): one process, or several on one port, a socket each."""

from __future__ import annotations

import functools
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from service.app import create_app
from service.core.metrics import MULTIPROCESS_DIR_VARIABLE
from service.core.settings import Settings
from service.uvicorn_internals import STARTUP_FAILURE, GatewayProtocol, ReusePortMultiprocess, require_tested_uvicorn
from service.workers import bind_worker_sockets


def run_gateway(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, finish what is queued, and exit.

    With ``workers`` > 1, uvicorn's supervisor starts that many processes, and each one listens on a
    socket of its own bound to the port with ``SO_REUSEPORT`` (``service.workers``): the kernel spreads
    new connections evenly over the workers, where one shared socket let whichever woke first take a
    whole burst. All sockets are bound here first, so a port in use fails at once; a worker's socket
    listens only once its model is loaded, and closes with the worker (its replacement gets a new one).
    Each worker reads its settings from the environment (these settings, exported) and has its own
    model and batcher; the metrics of all of them are added up in a shared directory (prometheus-client's
    multiprocess mode), so every worker's ``/metrics`` reports the whole server.

    An untested uvicorn release is refused first: the gateway overrides its internals (``service.uvicorn_internals``).
    """
    require_tested_uvicorn()
    options = {
        "host": settings.server.host,
        "port": settings.server.port,
        "access_log": False,
        "timeout_graceful_shutdown": settings.server.graceful_shutdown_seconds,
        "log_level": "info",
        "http": functools.partial(GatewayProtocol, header_timeout=settings.server.header_timeout_seconds),
    }
    if settings.server.workers == 1:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
        return
    config = uvicorn.Config("service.app:create_app", factory=True, workers=settings.server.workers, **options)  # type: ignore[arg-type]
    try:
        sockets = bind_worker_sockets(settings.server.host, settings.server.port, settings.server.workers)
    except OSError as exc:
        logging.getLogger("uvicorn.error").error(
            "cannot listen on %s:%d: %s", settings.server.host, settings.server.port, exc
        )
        sys.exit(STARTUP_FAILURE)
    with _shared_metrics_directory():
        os.environ.update(settings.environment())
        ReusePortMultiprocess(config, sockets).run()


@contextmanager
def _shared_metrics_directory() -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="digits-metrics-") as directory:
        os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR_VARIABLE]
