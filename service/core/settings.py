"""Every setting of the gateway, grouped by concern, each read from the environment with the prefix ``DIGITS_``
(``DIGITS_MAX_BATCH_SIZE`` is ``settings.batching.max_batch_size``). docs/settings.md lists them all."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from model.settings import DEFAULT_ARTIFACT

PREFIX = "DIGITS_"


class _Group(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True)


class ServerSettings(_Group):
    """Where the gateway listens, with how many processes, and how it shuts down."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in a container)")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port")
    # Off unless asked for: the gateway opens no port the operator did not name. The deployments use 8001,
    # the port Triton's and KServe's gRPC clients expect beside HTTP on 8000.
    grpc_port: int = Field(0, ge=0, le=65535, description="port of the Open Inference Protocol over gRPC; 0: off")
    workers: int = Field(1, ge=1, description="gateway processes on the port, each with its own model and batcher")
    # Slow clients (slowloris): a connection that has not sent its request head in this time is closed.
    header_timeout_seconds: float = Field(10.0, gt=0, description="time allowed for a request's head")
    graceful_shutdown_seconds: int = Field(30, ge=0, description="how long SIGTERM waits for in-flight requests")


class ModelSettings(_Group):
    """What is served, and where the model runs."""

    artifact: Path = Field(DEFAULT_ARTIFACT, description="the TorchScript file; its card is the .json beside it")
    backend: Literal["embedded", "torchserve"] = Field("embedded", description="run the model here or in TorchServe")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when a GPU is present, else cpu")
    torch_threads: int = Field(1, ge=1, description="intra-op threads of the embedded model")


class RepositorySettings(_Group):
    """Several model versions: where they are, where the serving state every process shares is kept."""

    model_repository: Path | None = Field(
        None, description="a directory of versions (<version>/digits.pt and digits.json); unset: DIGITS_ARTIFACT alone"
    )
    model_version: str | None = Field(None, description="the version to serve first (default: the newest)")
    repository_autoload: bool = Field(False, description="load a version directory as soon as it appears")
    repository_poll_seconds: float = Field(
        1.0, gt=0, description="how often each process checks the shared state, the repository and its rollout"
    )
    state_dir: Path | None = Field(
        None,
        description="the serving state (versions, traffic policy, rollout) shared by every process and replica; "
        "default: ~/.local/state/digits/<port>",
    )


class RolloutSettings(_Group):
    """Traffic between versions, shadow copies, and the automatic rollout's plan and gates."""

    rollout_steps: list[str] = Field(
        ["shadow", "5", "25", "50", "100"], description="the plan: shadow, then the candidate's share in percent"
    )
    rollout_step_min_requests: int = Field(
        200, ge=1, description="a step holds until the candidate answered (or shadowed) this many requests"
    )
    rollout_step_min_seconds: float = Field(30.0, ge=0, description="and until this long has passed")
    rollout_gate_min_samples: int = Field(50, ge=1, description="requests a gate needs before it can fail a step")
    rollout_max_p99_ratio: float = Field(1.5, gt=0, description="candidate's p99 latency over stable's, at most")
    rollout_max_error_ratio: float = Field(
        2.0, ge=1, description="candidate's error rate over stable's (at least 0.1 %), at most"
    )
    rollout_min_agreement: float = Field(
        0.97, ge=0, le=1, description="share of shadowed images whose top label agrees with stable's, at least"
    )
    rollout_max_confidence_drop: float = Field(
        0.02, ge=0, le=1, description="drop of the mean top-1 probability against stable's, at most"
    )
    rollout_keep_previous_seconds: float = Field(
        600.0, ge=0, description="after a promotion the previous version stays loaded this long: an instant rollback"
    )
    traffic_sticky: Literal["request", "api_key", "header"] = Field(
        "request", description="what keeps a client on one version: nothing, its API key, or the header below"
    )
    traffic_sticky_header: str = Field("X-Digits-Client", description="the header with traffic_sticky=header")
    shadow_sampling: float = Field(1.0, ge=0, le=1, description="share of stable's requests copied in a shadow step")
    shadow_max_share: float = Field(0.5, gt=0, le=1, description="cap on shadow copies' share of all model time")


class BatchingSettings(_Group):
    """Dynamic batching and admission (service/core/batcher.py)."""

    max_batch_size: int = Field(64, ge=1, description="most images in one model call")
    # 0: no added wait; requests that arrive while the model is busy form the next batch anyway.
    max_batch_wait_ms: float = Field(0.0, ge=0.0, description="how long an idle model waits for a batch to fill up")
    inline_max_images: int = Field(
        1, ge=0, description="requests of at most this many images run without a hand-off when the server is idle"
    )
    max_queue_images: int = Field(2048, ge=1, description="images waiting for the model before 503")
    max_queue_wait_ms: float = Field(
        500.0, gt=0, description="longest a request may wait for the model: 503 queue_full when it would wait longer"
    )
    retry_after_seconds: int = Field(1, ge=1, description="the Retry-After of a 503")

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> Self:
        if self.max_queue_images < self.max_batch_size:
            raise ValueError(
                f"DIGITS_MAX_QUEUE_IMAGES ({self.max_queue_images}) is below DIGITS_MAX_BATCH_SIZE "
                f"({self.max_batch_size}): the queue could never fill a batch; raise it"
            )
        return self


class LimitsSettings(_Group):
    """What one request may hold."""

    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="request body size limit (413 beyond)")
    max_image_pixels: int = Field(16_000_000, ge=784, description="width x height limit of one decoded image")
    max_images_per_request: int = Field(64, ge=1, description="most images in one request (413 beyond)")
    # A body refused early is read and dropped before the connection closes, so the client reads the 413
    # instead of a reset (nginx's lingering close); bounded in bytes and time.
    linger_max_bytes: int = Field(16 * 1024 * 1024, ge=0, description="request bytes drained after a refusal")
    linger_seconds: float = Field(5.0, ge=0, description="how long a refused request's body is drained")


class AuthSettings(_Group):
    """Who may call the API, and from which origins."""

    api_keys_file: Path | None = Field(None, description="sha256 hashes of the API keys; unset: no keys needed")
    auth_metrics: bool = Field(False, description="also require a key for /healthz, /readyz and /metrics")
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed to call the API (CORS)")


class TorchServeSettings(_Group):
    """The TorchServe backend (``DIGITS_BACKEND=torchserve``); launching it here: ops.settings.OpsSettings."""

    torchserve_url: str = Field("http://127.0.0.1:8080", description="TorchServe's inference API")
    torchserve_management_url: str = Field("http://127.0.0.1:8081", description="TorchServe's management API")
    torchserve_model: str = Field("digits", description="the model's name in TorchServe")
    torchserve_timeout_seconds: float = Field(10.0, gt=0, description="longest wait for a batch's answer")
    torchserve_connect_timeout_seconds: float = Field(1.0, gt=0, description="longest wait for a connection")
    torchserve_max_connections: int = Field(64, ge=1, description="connections kept open to TorchServe")
    torchserve_batches_in_flight: int = Field(2, ge=1, description="batches sent at once; about TorchServe's workers")
    torchserve_health_timeout_seconds: float = Field(2.0, gt=0, description="/readyz waits this long")


class TelemetrySettings(_Group):
    """What the gateway records about itself: the built-in dashboard's history (GET /dashboard)."""

    dashboard_interval_seconds: float = Field(2.0, ge=0.2, description="how often the metrics history is sampled")
    dashboard_history_seconds: float = Field(300.0, gt=0, description="how far back the dashboard history reaches")
    dashboard_route: str = Field("/v1/predict", description="route whose traffic the dashboard charts")

    @model_validator(mode="after")
    def _history_holds_a_point(self) -> Self:
        if self.dashboard_history_seconds < self.dashboard_interval_seconds:
            raise ValueError(
                f"DIGITS_DASHBOARD_HISTORY_SECONDS ({self.dashboard_history_seconds}) is shorter than "
                f"DIGITS_DASHBOARD_INTERVAL_SECONDS ({self.dashboard_interval_seconds}): it would hold no point; "
                "raise the history or shorten the interval"
            )
        return self


class MonitoringSettings(_Group):
    """Input and prediction drift against the card's training baseline (service/core/drift.py)."""

    drift_monitoring: bool = Field(True, description="score the served inputs and predictions against the baseline")
    drift_window_images: int = Field(1000, ge=10, description="the drift window: this many last images per worker")
    drift_refresh_seconds: float = Field(5.0, gt=0, description="how often the window's drift scores are computed")
    drift_requests_per_second: float = Field(
        100.0, gt=0, description="the most requests measured for the drift window a second, per worker"
    )


class PayloadLogSettings(_Group):
    """Sampled payload logging (service/core/payload_log.py): off unless a directory is set."""

    payload_log_dir: Path | None = Field(None, description="where the sampled payloads go as JSON lines; unset: off")
    payload_log_per_second: float = Field(1.0, gt=0, description="most requests logged per second, per worker")
    payload_log_max_bytes: int = Field(50 * 1024 * 1024, ge=4096, description="a log file rotates at this size")
    payload_log_backups: int = Field(5, ge=0, description="rotated files kept per worker, the oldest deleted")


class Settings(BaseModel):
    """The gateway's settings, one group per concern; ``Settings()`` reads every group from the environment."""

    model_config = ConfigDict(frozen=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    repository: RepositorySettings = Field(default_factory=RepositorySettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    batching: BatchingSettings = Field(default_factory=BatchingSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    torchserve: TorchServeSettings = Field(default_factory=TorchServeSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    payload_log: PayloadLogSettings = Field(default_factory=PayloadLogSettings)

    @model_validator(mode="after")
    def _a_repository_is_served_here(self) -> Self:
        if self.repository.model_repository is not None and self.model.backend == "torchserve":
            raise ValueError(
                "DIGITS_MODEL_REPOSITORY serves several versions in this process: TorchServe serves one; unset "
                "DIGITS_MODEL_REPOSITORY or use DIGITS_BACKEND=embedded"
            )
        return self

    def state_directory(self) -> Path:
        return self.repository.state_dir or Path.home() / ".local" / "state" / "digits" / str(self.server.port)

    @model_validator(mode="after")
    def _a_request_fits_a_batch(self) -> Self:
        limit, batch = self.limits.max_images_per_request, self.batching.max_batch_size
        if limit > batch:
            raise ValueError(
                f"DIGITS_MAX_IMAGES_PER_REQUEST ({limit}) exceeds DIGITS_MAX_BATCH_SIZE ({batch}): one request must "
                "fit in one batch; raise the batch size or lower the limit"
            )
        return self

    def environment(self) -> dict[str, str]:
        """The ``DIGITS_*`` variables that make ``Settings()`` in another process equal these settings."""
        variables = {}
        for group in self.model_dump(mode="json", exclude_none=True).values():
            for name, value in group.items():
                variables[f"{PREFIX}{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return variables


@lru_cache
def get_settings() -> Settings:
    return Settings()
