"""Settings only the tools around the gateway read (launching TorchServe here, monitoring it), prefix ``DIGITS_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class OpsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGITS_", extra="ignore")

    torchserve_metrics_url: str = Field("http://127.0.0.1:8082", description="TorchServe's metrics API")
    # digits serve --backend torchserve, digits torchserve.
    torchserve_mar: Path | None = Field(default=None, description="default: built from DIGITS_ARTIFACT")
    torchserve_workers: int | None = Field(default=None, ge=1, description="default: one per CPU core")
    torchserve_log_dir: Path = Field(Path("logs/torchserve"), description="where a local TorchServe writes its logs")
    torchserve_start_timeout_seconds: float = Field(
        default=180.0, gt=0, description="how long a local TorchServe may take to answer"
    )
