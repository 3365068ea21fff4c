"""The model loop on the previous model version, out of git: a model change measured side by side.

The previous version is the newest commit whose card (``model/artifacts/digits.json``) names another
``version`` than the card in the working tree. Two targets take it:

- ``model-loop-previous``: that commit's artifact, run by this checkout's code (what the network alone gained);
- ``model-loop-previous-release``: that commit's artifact run by that commit's own code (what users gain:
  the network and the way it is run, as served before).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import orjson

from loadtest.targets import BenchContext, ModelLoopTarget, TargetError
from model.settings import DEFAULT_ARTIFACT

# What the previous release's model loop imports; its card and artifact come with model/.
RELEASE_PACKAGES = ("model", "service", "loadtest", "ops")


def _git(*args: str) -> bytes:
    try:
        return subprocess.run(
            ["git", *args], cwd=DEFAULT_ARTIFACT.parent, capture_output=True, check=True, timeout=120
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise TargetError(f"git {' '.join(args[:2])} failed (is this a git checkout?): {exc}") from exc


def previous_version_commit(artifact: Path = DEFAULT_ARTIFACT) -> tuple[str, str]:
    """The newest commit whose card names another version than the current one, and that version."""
    card = artifact.with_suffix(".json")
    current = orjson.loads(card.read_bytes())["version"]
    for commit in _git("log", "--format=%H", "--", str(card)).decode().split():
        version = orjson.loads(_git("show", f"{commit}:./{card.name}"))["version"]
        if version != current:
            return commit, str(version)
    raise TargetError(f"no committed card has a version other than {current}")


class PreviousModelLoopTarget(ModelLoopTarget):
    name = "model-loop-previous"
    description = "the model loop on the previous model version's artifact (from git), run by this code"

    def __init__(self) -> None:
        self._folder: Path | None = None

    def start(self, context: BenchContext) -> None:
        commit, version = previous_version_commit()
        folder = Path(tempfile.mkdtemp(prefix=f"digits-model-{version}-"))
        try:
            self.extract(commit, folder)
        except Exception:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self._folder = folder

    def extract(self, commit: str, folder: Path) -> None:
        for path in (DEFAULT_ARTIFACT, DEFAULT_ARTIFACT.with_suffix(".json")):
            (folder / path.name).write_bytes(_git("show", f"{commit}:./{path.name}"))

    def stop(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def folder(self) -> Path:
        if self._folder is None:
            raise TargetError(f"{self.name}: not started")
        return self._folder

    def artifact(self, context: BenchContext) -> Path:
        return self.folder() / DEFAULT_ARTIFACT.name


class PreviousReleaseModelLoopTarget(PreviousModelLoopTarget):
    name = "model-loop-previous-release"
    description = "the model loop of the previous model version's commit: its artifact, run by its own code"

    def extract(self, commit: str, folder: Path) -> None:
        top = _git("rev-parse", "--show-toplevel").decode().strip()
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, *RELEASE_PACKAGES], cwd=top, capture_output=True, timeout=120
        )
        if archive.returncode != 0:
            raise TargetError(f"git archive {commit} failed: {archive.stderr.decode(errors='replace')}")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")

    def artifact(self, context: BenchContext) -> Path:
        return self.folder() / DEFAULT_ARTIFACT.relative_to(DEFAULT_ARTIFACT.parents[2])

    def code_root(self) -> Path | None:
        return self.folder()
