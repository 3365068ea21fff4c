"""This project's code and model as of an earlier commit, for the ``gateway-previous`` and ``model-loop-previous*``
targets: so a regression shows.

``git archive`` exports the commit's packages into a folder of the run (once per run and commit); the target
starts ``digits serve`` there with this interpreter, whose ``sys.path`` then puts that folder first. It serves
the benchmarked artifact, so only the serving code differs from the ``gateway`` target. Which commit is the
caller's to say (``digits benchmark --previous-ref REF``): a release tag, a branch, ``main~5``.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Those a commit has are exported: the benchmark lived in loadtest/ before bench/ existed.
PACKAGES = ("digits_cli", "service", "model", "ops", "loadtest", "bench")


class PreviousError(RuntimeError):
    """The ref is unknown here, or this is no git checkout."""


def _git(*args: str) -> bytes:
    try:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=True, timeout=120).stdout
    except subprocess.CalledProcessError as exc:
        raise PreviousError(f"git {' '.join(args)}: {exc.stderr.decode(errors='replace').strip()}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PreviousError(f"git {' '.join(args)}: {exc}") from exc


def resolve(ref: str) -> str:
    """The full commit id of ``ref`` in this repository."""
    return _git("rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}").decode().strip()


def commits_changing(path: Path) -> list[str]:
    """The commits that changed ``path`` (in this checkout), newest first."""
    return _git("log", "--format=%H", "--", str(path.resolve().relative_to(REPO))).decode().split()


def file_at(commit: str, path: Path) -> bytes:
    """The content of ``path`` (in this checkout) as of ``commit``."""
    return _git("show", f"{commit}:{path.resolve().relative_to(REPO).as_posix()}")


def export(ref: str, parent: Path) -> Path:
    """The packages of ``ref`` in ``parent/digits-<commit>``, exported on first use."""
    commit = resolve(ref)
    tree = parent / f"digits-{commit[:12]}"
    if not (tree / "digits_cli").is_dir():
        listed = _git("ls-tree", "--name-only", commit).decode().split()
        archive = _git("archive", "--format=tar", commit, "--", *(p for p in PACKAGES if p in listed))
        tree.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tree, filter="data")
    return tree
