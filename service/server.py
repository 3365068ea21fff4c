"""Run the gateway under uvicorn (what ``digits serve`` does)."""

from __future__ import annotations

import uvicorn

from service.app import create_app
from service.settings import Settings


def run_gateway(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM; then stop accepting, finish what is queued, and exit."""
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        timeout_graceful_shutdown=settings.graceful_shutdown_seconds,
        log_level="info",
    )
