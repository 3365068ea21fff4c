"""The model in TorchServe: each gateway batch is one HTTP request over a pooled aiohttp session.

The gateway validates and preprocesses; TorchServe gets the ready float32 batch as ``.npy`` bytes with the
feature layers it needs, and answers with tensors (:mod:`service.backends.torchserve.wire`). aiohttp rather than httpx:
as a proxy in front of TorchServe it sustained about three times the request rate on the same machine.

Failures: a refused or dropped connection is retried once (inference has no side effects, and a pooled
connection goes stale whenever TorchServe restarts), then answers ``backend_unavailable`` (503) at once;
a request that outlives ``DIGITS_TORCHSERVE_TIMEOUT_SECONDS`` answers ``backend_timeout`` (504) and is
never retried. ``ready()`` asks the management API whether a worker of the model is READY, so /readyz
follows TorchServe down and back up without a gateway restart.
"""

from __future__ import annotations

import logging
from typing import Any, Self

import aiohttp
import numpy as np
import orjson
from yarl import URL

from model.card import load_card
from service.backends.torchserve.wire import decode_response, encode_request
from service.core.backend import Backend
from service.core.errors import ApiError, ErrorCode
from service.core.settings import Settings
from service.core.types import BatchOutput

log = logging.getLogger(__name__)

RETRIES_ON_CONNECTION_ERROR = 1


def _checked_url(url: str, setting: str) -> URL:
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"{setting} must be an http(s) URL such as http://127.0.0.1:8080, got {url!r}")
    return parsed


class TorchServeBackend(Backend):
    name = "torchserve"

    def __init__(
        self,
        *,
        inference_url: str,
        management_url: str,
        model: str,
        timeout_seconds: float,
        connect_timeout_seconds: float,
        health_timeout_seconds: float,
        max_connections: int,
        batches_in_flight: int = 2,
        expected_version: str | None = None,
        retry_after_seconds: int = 1,
    ) -> None:
        self._predict_url = _checked_url(inference_url, "DIGITS_TORCHSERVE_URL") / "predictions" / model
        self._describe_url = _checked_url(management_url, "DIGITS_TORCHSERVE_MANAGEMENT_URL") / "models" / model
        self._model = model
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, sock_connect=connect_timeout_seconds)
        self._health_timeout = aiohttp.ClientTimeout(total=health_timeout_seconds, sock_connect=connect_timeout_seconds)
        self._max_connections = max_connections
        self.max_batches_in_flight = batches_in_flight
        self._expected_version = expected_version
        self._unavailable_headers = {"Retry-After": str(retry_after_seconds)}
        self._session: aiohttp.ClientSession | None = None
        self._device = "remote"
        self._version_warned = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            inference_url=settings.torchserve.torchserve_url,
            management_url=settings.torchserve.torchserve_management_url,
            model=settings.torchserve.torchserve_model,
            timeout_seconds=settings.torchserve.torchserve_timeout_seconds,
            connect_timeout_seconds=settings.torchserve.torchserve_connect_timeout_seconds,
            health_timeout_seconds=settings.torchserve.torchserve_health_timeout_seconds,
            max_connections=settings.torchserve.torchserve_max_connections,
            batches_in_flight=settings.torchserve.torchserve_batches_in_flight,
            expected_version=load_card(settings.model.artifact).version,
            retry_after_seconds=settings.batching.retry_after_seconds,
        )

    @property
    def device(self) -> str:
        """``cpu`` or ``cuda`` once TorchServe has described its workers, ``remote`` before."""
        return self._device

    async def setup(self) -> None:
        """Open the connection pool; TorchServe may come up later (``ready()`` tells)."""
        connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, raise_for_status=False)
        if not await self.ready():
            log.warning("TorchServe model %s is not ready at %s yet; /readyz says 503 until it is",
                        self._model, self._describe_url)  # fmt: skip

    async def predict(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        body, headers = encode_request(batch, layers)
        status, payload = await self._post(body, headers)
        if status != 200:
            raise self._status_error(status, payload)
        return decode_response(payload, len(batch), layers)

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        session = self._require_session()
        for attempt in range(RETRIES_ON_CONNECTION_ERROR + 1):
            try:
                async with session.post(self._predict_url, data=body, headers=headers) as response:
                    return response.status, await response.read()
            except aiohttp.ConnectionTimeoutError as exc:  # nothing was sent: TorchServe is unreachable
                raise self._unavailable(f"no connection to TorchServe within the connect timeout ({exc})") from exc
            except TimeoutError as exc:
                raise ApiError(
                    ErrorCode.backend_timeout, "TorchServe did not answer within DIGITS_TORCHSERVE_TIMEOUT_SECONDS"
                ) from exc
            except aiohttp.ClientConnectionError as exc:
                if attempt < RETRIES_ON_CONNECTION_ERROR:
                    log.info("retrying after a connection error to TorchServe: %r", exc)
                    continue
                raise self._unavailable(f"TorchServe is unreachable ({type(exc).__name__})") from exc
        raise AssertionError("unreachable")

    def _unavailable(self, message: str) -> ApiError:
        return ApiError(ErrorCode.backend_unavailable, message, headers=self._unavailable_headers)

    def _status_error(self, status: int, payload: bytes) -> ApiError:
        detail = _error_message(payload)
        if status in (408, 504):
            return ApiError(ErrorCode.backend_timeout, f"TorchServe timed out: {detail}")
        if status >= 500 or status == 404:  # no worker, queue full, worker died, model not loaded
            return self._unavailable(f"TorchServe answered {status}: {detail}")
        log.error("TorchServe refused a gateway batch with %d: %s", status, detail)
        return ApiError(ErrorCode.internal_error, f"TorchServe refused the batch ({status})")

    async def ready(self) -> bool:
        try:
            session = self._require_session()
            async with session.get(self._describe_url, timeout=self._health_timeout) as response:
                if response.status != 200:
                    return False
                description = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError, ApiError):
            return False
        return self._check_description(description)

    def _check_description(self, description: Any) -> bool:
        try:
            model = description[0]
            workers = [w for w in model["workers"] if w.get("status") == "READY"]
            version = str(model.get("modelVersion"))
        except (IndexError, KeyError, TypeError):
            return False
        if workers:
            self._device = "cuda" if any(w.get("gpu") for w in workers) else "cpu"
        if self._expected_version is not None and version != self._expected_version:
            if not self._version_warned:
                log.error("TorchServe serves %s version %s but the gateway's model card is version %s: not ready",
                          self._model, version, self._expected_version)  # fmt: skip
                self._version_warned = True
            return False
        return bool(workers)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise ApiError(ErrorCode.not_ready, "the TorchServe backend is not set up yet")
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _error_message(payload: bytes) -> str:
    """TorchServe's own ``{"message"}`` or our handler's ``{"error": {"message"}}``, shortened."""
    try:
        body = orjson.loads(payload)
        message = body["error"]["message"] if "error" in body else body.get("message", "")
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        message = payload[:200].decode(errors="replace")
    return str(message)[:300]
