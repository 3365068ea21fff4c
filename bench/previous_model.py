"""The model loop on earlier models, out of git: a model change measured side by side.

- ``model-loop-previous``: the previous model version's artifact, run by this checkout's code: what the network
  alone gained. The previous version is the newest commit whose card (``model/artifacts/digits.json``) names
  another ``version`` than the card in the working tree.
- ``model-loop-previous-release``: the model loop of ``--previous-ref`` (like ``gateway-previous``), its own
  artifact run by its own code: what users gain, the network and the way it is run together.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from bench.previous import PreviousError, commits_changing, file_at
from bench.targets import BenchContext, ModelLoopTarget, TargetError, previous_release_artifact, previous_tree
from model.settings import DEFAULT_ARTIFACT

CARD = DEFAULT_ARTIFACT.with_suffix(".json")


def previous_version_commit(card: Path = CARD) -> tuple[str, str]:
    """The newest commit whose card names another version than the current one, and that version."""
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
        self._artifact: Path | None = None

    def start(self, context: BenchContext) -> None:
        commit, version = previous_version_commit()
        folder = context.log_dir / f"{self.name}-{version}"
        folder.mkdir(parents=True, exist_ok=True)
        try:
            for path in (DEFAULT_ARTIFACT, CARD):
                (folder / path.name).write_bytes(file_at(commit, path))
        except PreviousError as exc:
            raise TargetError(f"{self.name}: {exc}") from exc
        self._artifact = folder / DEFAULT_ARTIFACT.name

    def artifact(self, context: BenchContext) -> Path:
        if self._artifact is None:
            raise TargetError(f"{self.name}: not started")
        return self._artifact


class PreviousReleaseModelLoopTarget(ModelLoopTarget):
    name = "model-loop-previous-release"
    description = "the model loop of `--previous-ref`: that commit's artifact, run by that commit's code"

    def workdir(self, context: BenchContext) -> Path | None:
        return previous_tree(self.name, context)

    def artifact(self, context: BenchContext) -> Path:
        return previous_release_artifact(self.name, context)
