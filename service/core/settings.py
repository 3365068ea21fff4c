"""Every setting of the gateway, read from the environment with the prefix ``DIGITS_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.settings import DEFAULT_ARTIFACT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGITS_", extra="ignore")

    # Where and what to serve.
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Off unless asked for: the gateway opens no port the operator did not name. The deployments use 8001,
    # the port Triton's and KServe's gRPC clients expect beside HTTP on 8000.
    grpc_port: int = Field(0, ge=0, le=65535, description="port of the Open Inference Protocol over gRPC; 0: off")
    artifact: Path = DEFAULT_ARTIFACT
    backend: Literal["embedded", "torchserve"] = "embedded"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(1, ge=1, description="intra-op threads of the embedded model")
    workers: int = Field(1, ge=1, description="gateway processes on the port, each with its own model and batcher")

    # Limits.
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="request body size limit (413 beyond)")
    max_image_pixels: int = Field(16_000_000, ge=784, description="width x height limit of one decoded image")
    max_images_per_request: int = Field(64, ge=1)
    max_queue_images: int = Field(2048, ge=1, description="images waiting for the model before 503")
    retry_after_seconds: int = Field(1, ge=1)
    max_queue_wait_ms: float = Field(
        500.0, gt=0, description="longest a request may wait for the model: 503 queue_full when it would wait longer"
    )
    # A body refused early is read and dropped before the connection closes, so the client reads the 413
    # instead of a reset (nginx's lingering close); bounded in bytes and time.
    linger_max_bytes: int = Field(16 * 1024 * 1024, ge=0, description="request bytes drained after a refusal")
    linger_seconds: float = Field(5.0, ge=0, description="how long a refused request's body is drained")
    # Slow clients (slowloris): a connection that has not sent its request head in this time is closed.
    header_timeout_seconds: float = Field(10.0, gt=0, description="time allowed for a request's head")

    # Access.
    api_keys_file: Path | None = Field(None, description="sha256 hashes of the API keys; unset: no keys needed")
    auth_metrics: bool = Field(False, description="also require a key for /healthz, /readyz and /metrics")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API (CORS)")

    # Dynamic batching.
    max_batch_size: int = Field(64, ge=1)
    # 0: no added wait; requests that arrive while the model is busy form the next batch anyway.
    max_batch_wait_ms: float = Field(0.0, ge=0.0, description="how long an idle model waits for a batch to fill up")
    # With max_batch_wait_ms 0, a request that arrives while nothing else is going on is a batch of its own
    # anyway: run on the event loop, it skips two thread wake-ups (about 0.1 ms at light load).
    inline_max_images: int = Field(
        1, ge=0, description="requests of at most this many images run without a hand-off when the server is idle"
    )

    # TorchServe backend.
    torchserve_url: str = "http://127.0.0.1:8080"
    torchserve_management_url: str = "http://127.0.0.1:8081"
    torchserve_model: str = "digits"
    torchserve_timeout_seconds: float = Field(10.0, gt=0)
    torchserve_connect_timeout_seconds: float = Field(1.0, gt=0)
    torchserve_max_connections: int = Field(64, ge=1)
    torchserve_batches_in_flight: int = Field(2, ge=1, description="batches sent at once; about TorchServe's workers")
    torchserve_health_timeout_seconds: float = Field(default=2.0, gt=0, description="/readyz waits this long")
    # Launching TorchServe on this machine: ops.settings.OpsSettings.

    # The built-in dashboard (GET /dashboard).
    dashboard_interval_seconds: float = Field(2.0, ge=0.2, description="how often the metrics history is sampled")
    dashboard_history_seconds: float = Field(300.0, gt=0, description="how far back the dashboard history reaches")
    dashboard_route: str = Field("/v1/predict", description="route whose traffic the dashboard charts")

    # Shutdown.
    graceful_shutdown_seconds: int = Field(30, ge=0, description="how long SIGTERM waits for in-flight requests")

    @model_validator(mode="after")
    def _check_batching(self) -> Self:
        if self.max_images_per_request > self.max_batch_size:
            raise ValueError(
                f"DIGITS_MAX_IMAGES_PER_REQUEST ({self.max_images_per_request}) exceeds DIGITS_MAX_BATCH_SIZE "
                f"({self.max_batch_size}): one request must fit in one batch; raise the batch size or lower the limit"
            )
        if self.max_queue_images < self.max_batch_size:
            raise ValueError(
                f"DIGITS_MAX_QUEUE_IMAGES ({self.max_queue_images}) is below DIGITS_MAX_BATCH_SIZE "
                f"({self.max_batch_size}): the queue could never fill a batch; raise it"
            )
        if self.dashboard_history_seconds < self.dashboard_interval_seconds:
            raise ValueError(
                f"DIGITS_DASHBOARD_HISTORY_SECONDS ({self.dashboard_history_seconds}) is shorter than "
                f"DIGITS_DASHBOARD_INTERVAL_SECONDS ({self.dashboard_interval_seconds}): it would hold no point; "
                "raise the history or shorten the interval"
            )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
