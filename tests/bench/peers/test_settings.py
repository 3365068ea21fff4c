"""The variables the benchmark and its peers read, through one settings model."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.peers.settings import PeersSettings
from bench.peers_venv import default_venv


def test_the_peers_venv_is_in_the_users_cache_unless_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DIGITS_PEERS_VENV", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_venv() == tmp_path / "cache" / "digits" / "peers-venv"
    monkeypatch.setenv("DIGITS_PEERS_VENV", "")  # empty: as if unset
    assert default_venv() == tmp_path / "cache" / "digits" / "peers-venv"
    monkeypatch.setenv("DIGITS_PEERS_VENV", str(tmp_path / "venv"))
    assert default_venv() == tmp_path / "venv"


def test_bentomls_knobs_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKERS", "MAX_BATCH_SIZE", "MAX_LATENCY_MS"):
        monkeypatch.delenv(f"DIGITS_BENTOML_{name}", raising=False)
    assert (PeersSettings().bentoml_workers, PeersSettings().bentoml_max_batch_size) == (1, 64)
    monkeypatch.setenv("DIGITS_BENTOML_WORKERS", "3")
    monkeypatch.setenv("DIGITS_BENTOML_MAX_LATENCY_MS", "5")
    settings = PeersSettings()
    assert (settings.bentoml_workers, settings.bentoml_max_latency_ms) == (3, 5)
    monkeypatch.setenv("DIGITS_BENTOML_WORKERS", "0")
    with pytest.raises(ValueError, match="bentoml_workers"):
        PeersSettings()
