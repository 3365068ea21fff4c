"""What the pages take from the running app, as Annotated dependencies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.ui.history import MetricsHistory


async def get_metrics_history(request: Request) -> MetricsHistory:  # async: no thread hop
    history: MetricsHistory = request.app.state.metrics_history
    return history


MetricsHistoryDep = Annotated[MetricsHistory, Depends(get_metrics_history)]
