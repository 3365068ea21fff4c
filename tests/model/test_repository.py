"""The model repository: its versions in order, each read and verified, every refusal with its own code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model.card import load_card, save_card
from model.refusal import RefusalCode, VersionRefused
from model.repository import ARTIFACT_NAME, ModelRepository, parse_version
from model.settings import DEFAULT_REPOSITORY
from tests.versions import SHIPPED_VERSIONS, copy_version, wrong_hash_version


def refusal(repository: ModelRepository, version: str) -> VersionRefused:
    with pytest.raises(VersionRefused) as caught:
        repository.verify(version)
    assert caught.value.version == version
    return caught.value


def test_the_shipped_repository_holds_versions_made_by_training(artifact: Path) -> None:
    repository = ModelRepository(DEFAULT_REPOSITORY)
    assert repository.versions() == SHIPPED_VERSIONS
    assert repository.latest() == SHIPPED_VERSIONS[-1]
    for version in repository.versions():
        found = repository.verify(version)
        assert found.card.version == version and found.artifact == DEFAULT_REPOSITORY / version / ARTIFACT_NAME
        assert found.card.evaluation.accuracy >= 0.996 and found.card.training.torch_version.startswith("2.")
    assert len({repository.read(version).card.training.seed for version in repository.versions()}) == 2
    # The served single artifact is one of them, the same file, not a copy.
    shipped = ModelRepository.of_artifact(artifact).verify(load_card(artifact).version)
    assert repository.artifact_path(shipped.version).resolve() == artifact.resolve()


def test_the_single_artifact_is_a_repository_of_its_one_version(artifact: Path) -> None:
    repository = ModelRepository.of_artifact(artifact)
    assert repository.versions() == [load_card(artifact).version]
    assert repository.verify(repository.latest()).artifact == artifact
    assert refusal(repository, "9.9.9").code is RefusalCode.UNKNOWN_VERSION


def test_versions_sort_as_versions_and_other_entries_are_not_versions(tmp_path: Path) -> None:
    for name in ["2.10.0", "10.0.0", "2.9.1", "2.9.0", ".2.11.0.partial", "notes", "2.9"]:
        (tmp_path / name).mkdir()
    (tmp_path / "3.0.0").write_text("a file, not a version directory")
    assert ModelRepository(tmp_path).versions() == ["2.9.0", "2.9.1", "2.10.0", "10.0.0"]
    assert ModelRepository(tmp_path / "absent").versions() == []
    with pytest.raises(VersionRefused) as caught:
        ModelRepository(tmp_path / "absent").latest()
    assert caught.value.code is RefusalCode.UNKNOWN_VERSION


@pytest.mark.parametrize("text", ["2.1", "v2.1.0", "02.1.0", "2.1.0-rc1", ""])
def test_only_major_minor_patch_is_a_version(text: str) -> None:
    with pytest.raises(ValueError):
        parse_version(text)


def test_a_copied_version_verifies(artifact: Path, tmp_path: Path) -> None:
    copy_version(artifact, tmp_path, "3.0.0")
    assert ModelRepository(tmp_path).verify("3.0.0").card.version == "3.0.0"


def test_an_unknown_version_is_refused(artifact: Path, tmp_path: Path) -> None:
    copy_version(artifact, tmp_path, "3.0.0")
    error = refusal(ModelRepository(tmp_path), "3.0.1")
    assert error.code is RefusalCode.UNKNOWN_VERSION and "3.0.0" in error.message
    assert refusal(ModelRepository(tmp_path), "../3.0.0").code is RefusalCode.UNKNOWN_VERSION


def test_a_changed_file_is_refused_for_its_hash(artifact: Path, tmp_path: Path) -> None:
    wrong_hash_version(artifact, tmp_path, "3.0.0")
    error = refusal(ModelRepository(tmp_path), "3.0.0")
    assert error.code is RefusalCode.HASH_MISMATCH and "sha256" in error.message
    assert "hash_mismatch" in str(error)


def test_a_version_without_its_card_or_file_is_refused(artifact: Path, tmp_path: Path) -> None:
    copy_version(artifact, tmp_path, "3.0.0").with_suffix(".json").unlink()
    copy_version(artifact, tmp_path, "3.0.1").unlink()
    repository = ModelRepository(tmp_path)
    assert refusal(repository, "3.0.0").code is RefusalCode.MISSING_CARD
    assert refusal(repository, "3.0.1").code is RefusalCode.MISSING_ARTIFACT


def test_a_card_that_is_not_one_or_names_another_version_is_refused(artifact: Path, tmp_path: Path) -> None:
    copy_version(artifact, tmp_path, "3.0.0").with_suffix(".json").write_text('{"name": "digits-convnet"}')
    renamed = copy_version(artifact, tmp_path, "3.0.1")
    save_card(load_card(renamed).model_copy(update={"version": "3.0.2"}), renamed)
    repository = ModelRepository(tmp_path)
    assert refusal(repository, "3.0.0").code is RefusalCode.INVALID_CARD
    error = refusal(repository, "3.0.1")
    assert error.code is RefusalCode.INVALID_CARD and "3.0.2" in error.message


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"input": {"shape": [1, 32, 32]}}, "[1, 32, 32]"),
        ({"input": {"dtype": "uint8"}}, "uint8"),
        ({"labels": [str(digit) for digit in range(9)]}, "labels"),
    ],
)
def test_a_card_whose_input_or_labels_are_not_the_servers_is_refused(
    artifact: Path, tmp_path: Path, changes: dict[str, object], said: str
) -> None:
    copy = copy_version(artifact, tmp_path, "3.0.0")
    card = load_card(copy)
    if "input" in changes:
        card = card.model_copy(update={"input": card.input.model_copy(update=changes["input"])})
    else:
        card = card.model_copy(update=changes)
    save_card(card, copy)
    error = refusal(ModelRepository(tmp_path), "3.0.0")
    assert error.code is RefusalCode.WRONG_INPUT_SHAPE and said in error.message


def test_a_new_version_appears_whole_or_not_at_all(artifact: Path, tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    with repository.new_version("3.0.0") as out:
        shutil.copyfile(artifact, out)
        save_card(load_card(artifact).model_copy(update={"version": "3.0.0"}), out)
        assert repository.versions() == []  # still being written
    assert repository.versions() == ["3.0.0"]
    assert repository.verify("3.0.0").artifact == tmp_path / "3.0.0" / ARTIFACT_NAME
    with pytest.raises(FileExistsError):
        repository.new_version("3.0.0").__enter__()
    with pytest.raises(RuntimeError), repository.new_version("3.0.1") as out:
        out.write_bytes(b"half a file")
        raise RuntimeError("training failed")
    assert repository.versions() == ["3.0.0"]
    assert [entry.name for entry in tmp_path.iterdir()] == ["3.0.0"]
