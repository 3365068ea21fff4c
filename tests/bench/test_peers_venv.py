"""The peers' virtualenv: pinned, made once from the pins and this torch, and made again when they change."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from bench.peers_venv import (
    MARKER,
    PeersVenvError,
    default_venv,
    ensure_peers_venv,
    fingerprint,
    is_ready,
    python_of,
    requirements,
)

pytestmark = pytest.mark.bench
REPO = Path(__file__).resolve().parents[2]


def test_the_peers_are_pinned_and_torch_is_this_interpreters() -> None:
    pins = requirements()
    assert "litserve==0.2.19" in pins and "bentoml==1.4.29" in pins
    assert f"torch=={metadata.version('torch').split('+')[0]}" in pins


def test_the_venv_runs_both_peers_on_the_same_torch_and_is_made_once() -> None:
    python = ensure_peers_venv(default_venv())
    probe = (
        "import bentoml, litserve, torch, bench.peers.digits_model; "
        "print(litserve.__version__, bentoml.__version__, torch.__version__)"
    )
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True, env={"PYTHONPATH": str(REPO)}
    )
    assert result.stdout.split() == ["0.2.19", "1.4.29", metadata.version("torch")]
    lines: list[str] = []
    assert ensure_peers_venv(default_venv(), lines.append) == python
    assert lines == []  # ready: nothing made


def test_a_venv_from_other_pins_is_not_ready(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    python_of(venv).parent.mkdir(parents=True)
    python_of(venv).symlink_to("/bin/true")
    assert not is_ready(venv)
    (venv / MARKER).write_text("made-from-other-pins\n")
    assert not is_ready(venv)
    (venv / MARKER).write_text(fingerprint() + "\n")
    assert is_ready(venv)


def test_a_venv_that_cannot_be_made_says_why(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(PeersVenvError, match="could not make"):
        ensure_peers_venv(tmp_path / "a-file" / "venv")
