"""The virtualenv the LitServe and BentoML peers run in, made on demand: they are never the package's dependencies.

It holds the pinned frameworks of ``bench/peers/requirements.txt`` and the torch this interpreter runs (the
same release, from the same wheel), so every target runs the same model code. The peers import the project from
the repository through ``PYTHONPATH``, not from an installed copy. A venv made from other pins, another torch or
another Python is made again; a lock keeps two benchmarks or test runs from making it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

from bench.peers.settings import PeersSettings

REQUIREMENTS = Path(__file__).with_name("peers") / "requirements.txt"
MARKER = "digits-peers-venv"
INSTALL_TIMEOUT_S = 1200


class PeersVenvError(RuntimeError):
    """The virtualenv could not be made; the log of pip's attempt is named."""


def default_venv() -> Path:
    """``$DIGITS_PEERS_VENV``, else ``digits/peers-venv`` in the user's cache (``$XDG_CACHE_HOME`` or ~/.cache)."""
    return PeersSettings().venv()


def requirements() -> list[str]:
    """The pinned peers and torch pinned to this interpreter's release (its public part: a local ``+cpu`` wheel
    still matches, and pip prefers it to the registry's)."""
    pins = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    torch = metadata.version("torch").split("+")[0]
    return [*(pin for pin in pins if pin and not pin.startswith("#")), f"torch=={torch}"]


def fingerprint() -> str:
    return hashlib.sha256("\n".join([sys.version, *requirements()]).encode()).hexdigest()[:16]


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_ready(venv: Path) -> bool:
    marker = venv / MARKER
    return python_of(venv).is_file() and marker.is_file() and marker.read_text().strip() == fingerprint()


@contextlib.contextmanager
def _locked(venv: Path) -> Iterator[None]:
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_peers_venv(venv: Path, progress: Callable[[str], None] = lambda line: None) -> Path:
    """The python of ``venv``, made first when it is missing or stale (a minute or two: pip)."""
    try:
        return _ensure(venv, progress)
    except OSError as exc:
        raise PeersVenvError(f"could not make {venv}: {exc}") from exc


def _ensure(venv: Path, progress: Callable[[str], None]) -> Path:
    with _locked(venv):
        if is_ready(venv):
            return python_of(venv)
        progress(f"making the peers' virtualenv {venv} (pip; once)")
        shutil.rmtree(venv, ignore_errors=True)
        log = venv.parent / f"{venv.name}.log"
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python_of(venv)), "-m", "pip", "install", "--disable-pip-version-check", *requirements()],
        ]
        with log.open("wb") as out:
            for step in steps:
                try:
                    subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=INSTALL_TIMEOUT_S)
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                    raise PeersVenvError(f"could not make {venv} ({exc}); see {log}") from exc
        (venv / MARKER).write_text(fingerprint() + "\n")
        return python_of(venv)


def main() -> None:
    """``python -m bench.peers_venv``: make the virtualenv now (``make peers-venv``), print its python."""
    try:
        print(ensure_peers_venv(default_venv(), print))
    except PeersVenvError as exc:
        raise SystemExit(str(exc)) from exc


if __name__ == "__main__":
    main()
