"""The gateway's admin API over HTTP, for the commands that manage it (``digits rollout``): where the gateway is
and the admin key, from ``DIGITS_URL`` and ``DIGITS_API_KEY`` or the command line."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# A start answers once the candidate is loaded, warmed at every batch size and probed.
TIMEOUT_SECONDS = 120.0


class ClientSettings(BaseSettings):
    """The gateway an admin command talks to (``digits rollout``)."""

    model_config = SettingsConfigDict(env_prefix="DIGITS_", extra="ignore")

    url: str = Field("http://127.0.0.1:8000", description="the gateway's address, for admin commands")
    api_key: SecretStr | None = Field(None, description="an admin key (digits api-key --role admin), sent as Bearer")


class GatewayError(Exception):
    """The gateway refused (its status, code and message), or could not be reached (status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else message)
        self.status = status
        self.code = code
        self.message = message


class GatewayClient:
    def __init__(self, settings: ClientSettings) -> None:
        self.url = settings.url.rstrip("/")
        self.key = settings.api_key.get_secret_value() if settings.api_key else None
        self.timeout = TIMEOUT_SECONDS

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._call("POST", path, body)

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(f"{self.url}{path}", data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: dict[str, Any] = json.loads(response.read())
                return answer
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise GatewayError(0, "unreachable", f"cannot reach the gateway at {self.url}: {reason}") from None


def _refusal(exc: urllib.error.HTTPError) -> GatewayError:
    text = exc.read().decode(errors="replace")
    try:
        error = json.loads(text)["error"]
        return GatewayError(exc.code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return GatewayError(exc.code, "http_error", text.strip() or str(exc.reason))
