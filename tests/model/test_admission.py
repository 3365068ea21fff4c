"""Admitting a version, every step on the real artifacts: both shipped versions pass; a corrupt file, a wrong hash,
a network that takes other images and one with two labels swapped are each refused with their own code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model.admission import admit, load_module, module_predict
from model.card import load_card
from model.probes import probe_batch
from model.refusal import RefusalCode, VersionRefused
from model.repository import ModelRepository
from model.settings import DEFAULT_REPOSITORY
from tests.versions import (
    SHIPPED_VERSIONS,
    copy_version,
    corrupt_version,
    recard,
    swapped_labels_version,
    wrong_hash_version,
)


def refused(root: Path, version: str) -> VersionRefused:
    with pytest.raises(VersionRefused) as caught:
        admit(ModelRepository(root), version)
    return caught.value


@pytest.mark.parametrize("version", SHIPPED_VERSIONS)
def test_each_shipped_version_passes_every_step(version: str) -> None:
    admitted = admit(ModelRepository(DEFAULT_REPOSITORY), version)
    assert admitted.found.version == version and len(admitted.found.card.probes) == 10
    assert [probe.label for probe in admitted.found.card.probes] == list(range(10))


def test_the_two_shipped_versions_are_different_networks_that_agree_on_the_probes() -> None:
    repository = ModelRepository(DEFAULT_REPOSITORY)
    old, new = (admit(repository, version) for version in SHIPPED_VERSIONS[-2:])
    assert old.found.card.sha256 != new.found.card.sha256
    batch = probe_batch(old.found.card.probes, old.found.card.input)
    old_scores, new_scores = module_predict(old.module)(batch), module_predict(new.module)(batch)
    assert (old_scores.argmax(1) == new_scores.argmax(1)).all()
    assert not (old_scores == new_scores).all()


def test_a_corrupt_file_is_refused(artifact: Path, tmp_path: Path) -> None:
    corrupt_version(artifact, tmp_path, "3.0.0")
    assert ModelRepository(tmp_path).verify("3.0.0")  # its hash is the card's: the load finds it out
    error = refused(tmp_path, "3.0.0")
    assert error.code is RefusalCode.CORRUPT_ARTIFACT and "not loadable TorchScript" in error.message


def test_a_wrong_hash_is_refused_before_loading(artifact: Path, tmp_path: Path) -> None:
    wrong_hash_version(artifact, tmp_path, "3.0.0")
    assert refused(tmp_path, "3.0.0").code is RefusalCode.HASH_MISMATCH


@pytest.mark.parametrize(
    ("network", "said"),
    [
        (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 10)), "fails on a [1, 28, 28]"),
        (torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 9)), "with [2, 9], not [2, 10]"),
    ],
)
def test_a_network_that_takes_other_images_or_answers_other_labels_is_refused(
    artifact: Path, tmp_path: Path, network: torch.nn.Module, said: str
) -> None:
    copy = copy_version(artifact, tmp_path, "3.0.0")
    torch.jit.script(network.eval()).save(str(copy))
    recard(copy)
    error = refused(tmp_path, "3.0.0")
    assert error.code is RefusalCode.WRONG_INPUT_SHAPE and said in error.message


def test_a_network_with_two_labels_swapped_loads_but_fails_its_probes(artifact: Path, tmp_path: Path) -> None:
    swapped = swapped_labels_version(artifact, tmp_path, "3.0.0", labels=(3, 5))
    found = ModelRepository(tmp_path).verify("3.0.0")
    module = load_module(found)  # loads, right shapes
    assert module.forward_features(torch.zeros(1, 1, 28, 28))[0].shape == (1, 10)
    error = refused(tmp_path, "3.0.0")
    assert error.code is RefusalCode.FAILED_PROBE
    assert "2 of 10 probes wrong" in error.message
    assert load_card(swapped).sha256 != load_card(artifact).sha256
