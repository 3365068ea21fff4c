"""A model repository: a directory of versions, each its TorchScript file and its card.

    <root>/<version>/digits.pt     the TorchScript artifact (the name DIGITS_ARTIFACT's default has)
    <root>/<version>/digits.json   its model card (model/card.py), whose ``version`` is the directory's name

Versions are semantic versions, MAJOR.MINOR.PATCH; other entries of the root (a version still being written by
``digits train --repository``, whose directory starts with a dot) are not versions. Reading a version checks that
its files exist and its card is valid; verifying it also checks the file's sha256 against the card and the card's
input spec and labels against what the server takes. Each failure raises ``VersionRefused`` with its code.
Today's single artifact (``DIGITS_ARTIFACT`` and the card beside it) is a repository of one version:
``ModelRepository.of_artifact``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from model.card import ModelCard, card_path_for, file_sha256
from model.refusal import RefusalCode, VersionRefused

ARTIFACT_NAME = "digits.pt"
CARD_NAME = card_path_for(Path(ARTIFACT_NAME)).name
# What the server takes and answers: the card's input spec and labels must say exactly this.
SERVED_INPUT_SHAPE = [1, 28, 28]
SERVED_DTYPE = "float32"
SERVED_LABELS = [str(digit) for digit in range(10)]

_SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


def parse_version(version: str) -> tuple[int, int, int]:
    """``"2.10.0"`` to ``(2, 10, 0)``, the order versions sort in; ValueError for anything else."""
    match = _SEMVER.fullmatch(version)
    if match is None:
        raise ValueError(f"{version!r} is not a version of the form MAJOR.MINOR.PATCH (for example 2.1.0)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


@dataclass(frozen=True)
class ModelVersion:
    """One version as read from the repository: its artifact's path and its card."""

    version: str
    artifact: Path
    card: ModelCard


class ModelRepository:
    """The versions under ``root`` (see the module's docstring), or with ``of_artifact`` one artifact's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._single: Path | None = None

    @classmethod
    def of_artifact(cls, artifact: Path) -> ModelRepository:
        """The single artifact ``artifact`` with its card beside it, as a repository whose one version is the
        card's."""
        repository = cls(artifact.parent)
        repository._single = artifact
        return repository

    def versions(self) -> list[str]:
        """The versions, oldest first (by semantic version, so 2.10.0 after 2.9.0)."""
        if self._single is not None:
            return [self._single_card().version]
        if not self.root.is_dir():
            return []
        names = [entry.name for entry in self.root.iterdir() if entry.is_dir() and _SEMVER.fullmatch(entry.name)]
        return sorted(names, key=parse_version)

    def latest(self) -> str:
        """The newest version; ``unknown_version`` in an empty repository."""
        versions = self.versions()
        if not versions:
            raise VersionRefused(RefusalCode.UNKNOWN_VERSION, "latest", f"the repository {self.root} has no versions")
        return versions[-1]

    def artifact_path(self, version: str) -> Path:
        """Where ``version``'s TorchScript file is (or should be); ``unknown_version`` if there is no such
        version."""
        if self._single is not None:
            if version != self._single_card().version:
                raise VersionRefused(
                    RefusalCode.UNKNOWN_VERSION, version, f"{self._single} holds version {self.versions()[0]} only"
                )
            return self._single
        if not _SEMVER.fullmatch(version) or not (self.root / version).is_dir():
            known = ", ".join(self.versions()) or "none"
            raise VersionRefused(
                RefusalCode.UNKNOWN_VERSION, version, f"no such version in {self.root} (it holds: {known})"
            )
        return self.root / version / ARTIFACT_NAME

    def read(self, version: str) -> ModelVersion:
        """``version``'s paths and card: ``unknown_version``, ``missing_card``, ``invalid_card`` (not a card, or
        one naming another version or file) or ``missing_artifact`` if they are not all there."""
        artifact = self.artifact_path(version)
        card = _read_card(artifact, version)
        if self._single is None and card.version != version:
            raise VersionRefused(
                RefusalCode.INVALID_CARD, version, f"the card in {artifact.parent} names version {card.version}"
            )
        if card.artifact != artifact.name:
            raise VersionRefused(
                RefusalCode.INVALID_CARD, version, f"the card names the file {card.artifact}, not {artifact.name}"
            )
        if not artifact.is_file():
            raise VersionRefused(RefusalCode.MISSING_ARTIFACT, version, f"{artifact} does not exist")
        return ModelVersion(version=version, artifact=artifact, card=card)

    def verify(self, version: str) -> ModelVersion:
        """``read``, then check the file's sha256 against the card (``hash_mismatch``) and the card's input spec
        and labels against what the server takes (``wrong_input_shape``)."""
        found = self.read(version)
        actual = file_sha256(found.artifact)
        if actual != found.card.sha256:
            raise VersionRefused(
                RefusalCode.HASH_MISMATCH,
                version,
                f"{found.artifact} has sha256 {actual}, its card says {found.card.sha256}",
            )
        check_input_spec(found.card)
        return found

    @contextmanager
    def new_version(self, version: str) -> Iterator[Path]:
        """Write a new version: yields the artifact path to write (its card beside it) in a hidden staging
        directory, which becomes ``<root>/<version>`` in one rename when the block ends without an error, so a
        reader polling the repository never sees half a version. FileExistsError if the version exists."""
        if self._single is not None:
            raise TypeError("a single artifact is a read-only repository of one version")
        parse_version(version)
        final = self.root / version
        if final.exists():
            raise FileExistsError(f"version {version} already exists in {self.root}")
        staging = self.root / f".{version}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            yield staging / ARTIFACT_NAME
            staging.rename(final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _single_card(self) -> ModelCard:
        assert self._single is not None
        return _read_card(self._single, self._single.stem)


def check_input_spec(card: ModelCard) -> None:
    """``wrong_input_shape`` unless the card's input is a 1x28x28 float32 image and its labels the ten digits."""
    spec = card.input
    if spec.shape != SERVED_INPUT_SHAPE or spec.dtype != SERVED_DTYPE:
        raise VersionRefused(
            RefusalCode.WRONG_INPUT_SHAPE,
            card.version,
            f"the card's input is {spec.dtype} {spec.shape}; the server sends {SERVED_DTYPE} {SERVED_INPUT_SHAPE}",
        )
    if card.labels != SERVED_LABELS:
        raise VersionRefused(
            RefusalCode.WRONG_INPUT_SHAPE,
            card.version,
            f"the card's labels are {card.labels}; the server answers {SERVED_LABELS}",
        )


def _read_card(artifact: Path, version: str) -> ModelCard:
    path = card_path_for(artifact)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise VersionRefused(RefusalCode.MISSING_CARD, version, f"{path} does not exist") from None
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the top"
        message = f"{path} is not a model card: {exc.error_count()} errors, first: {first['msg']} at {where}"
        raise VersionRefused(RefusalCode.INVALID_CARD, version, message) from None
