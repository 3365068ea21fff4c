"""The model loop on the previous model version, out of git: a model change measured side by side.

The previous version is the newest commit whose card (``model/artifacts/digits.json``) names another
``version`` than the card in the working tree. Two targets take it:

- ``model-loop-previous``: that commit's artifact, run by this checkout's code (what the network alone gained);
- ``model-loop-previous-release``: that commit's artifact run by that commit's own code (what users gain:
  the network and the way it is run, as served before).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import orjson

from loadtest.previous import REPO, PreviousError, commits_changing, export, file_at
from loadtest.targets import BenchContext, ModelLoopTarget, TargetError
from model.settings import DEFAULT_ARTIFACT


def previous_version_commit(artifact: Path = DEFAULT_ARTIFACT) -> tuple[str, str]:
    """The newest commit whose card names another version than the current one, and that version."""
    card = artifact.with_suffix(".json")
    current = orjson.loads(card.read_bytes())["version"]
    try:
        for commit in commits_changing(card):
            version = orjson.loads(file_at(commit, card))["version"]
            if version != current:
                return commit, str(version)
    except PreviousError as exc:
        raise TargetError(str(exc)) from exc
    raise TargetError(f"no committed card has a version other than {current}")


class PreviousModelLoopTarget(ModelLoopTarget):
    name = "model-loop-previous"
    description = "the model loop on the previous model version's artifact (from git), run by this code"

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._artifact: Path | None = None

    def start(self, context: BenchContext) -> None:
        commit, version = previous_version_commit()
        folder = Path(tempfile.mkdtemp(prefix=f"digits-model-{version}-"))
        try:
            self._artifact = self.extract(commit, folder)
        except PreviousError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise TargetError(str(exc)) from exc
        self._folder = folder

    def extract(self, commit: str, folder: Path) -> Path:
        """Write what the target runs into ``folder``; the artifact's path there."""
        for path in (DEFAULT_ARTIFACT, DEFAULT_ARTIFACT.with_suffix(".json")):
            (folder / path.name).write_bytes(file_at(commit, path))
        return folder / DEFAULT_ARTIFACT.name

    def stop(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = self._artifact = None

    def artifact(self, context: BenchContext) -> Path:
        if self._artifact is None:
            raise TargetError(f"{self.name}: not started")
        return self._artifact


class PreviousReleaseModelLoopTarget(PreviousModelLoopTarget):
    name = "model-loop-previous-release"
    description = "the model loop of the previous model version's commit: its artifact, run by its own code"

    def __init__(self) -> None:
        super().__init__()
        self._code: Path | None = None

    def extract(self, commit: str, folder: Path) -> Path:
        self._code = export(commit, folder)
        return self._code / DEFAULT_ARTIFACT.resolve().relative_to(REPO)

    def stop(self) -> None:
        super().stop()
        self._code = None

    def code_root(self) -> Path | None:
        return self._code
