"""What the benchmark's own code reads from the environment: where the peers' virtualenv lives and BentoML's knobs.

The gateway's variables (``DIGITS_ARTIFACT``, ``DIGITS_TORCH_THREADS``) stay the gateway's ``Settings``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PeersSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGITS_", extra="ignore", env_ignore_empty=True)

    peers_venv: Path | None = Field(default=None, description="default: digits/peers-venv in the user's cache")
    xdg_cache_home: Path | None = Field(default=None, validation_alias="XDG_CACHE_HOME")
    # Set by the bentoml target for bench/peers/bentoml_app.py.
    bentoml_workers: int = Field(default=1, ge=1, description="processes of each BentoML service")
    bentoml_max_batch_size: int = Field(default=64, ge=1)
    bentoml_max_latency_ms: int = Field(default=1000, ge=1)

    def venv(self) -> Path:
        """``$DIGITS_PEERS_VENV``, else ``digits/peers-venv`` in the user's cache (``$XDG_CACHE_HOME`` or ~/.cache)."""
        if self.peers_venv is not None:
            return self.peers_venv
        return (self.xdg_cache_home or Path.home() / ".cache") / "digits" / "peers-venv"
