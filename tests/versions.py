"""Model versions for tests: copies of a real version, and bad ones built from it (swapped labels, a corrupt file,
a wrong hash), each in a repository directory as ``digits train --version`` writes them."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from model.card import ModelCard, file_sha256, load_card, save_card
from model.repository import ARTIFACT_NAME

SHIPPED_VERSIONS = ["2.0.0", "2.1.0"]  # model/versions/, oldest first


def copy_version(artifact: Path, root: Path, version: str) -> Path:
    """``artifact`` and its card copied to ``<root>/<version>/``, the card renamed to ``version``; returns the new
    artifact's path."""
    directory = root / version
    directory.mkdir(parents=True)
    copy = directory / ARTIFACT_NAME
    shutil.copyfile(artifact, copy)  # the file itself, where ``artifact`` is a link
    save_card(load_card(artifact).model_copy(update={"version": version, "artifact": ARTIFACT_NAME}), copy)
    return copy


def recard(artifact: Path, **changes: object) -> ModelCard:
    """Rewrite ``artifact``'s card with ``changes`` and the file's own sha256, as if training had written it."""
    card = load_card(artifact).model_copy(update={**changes, "sha256": file_sha256(artifact)})
    save_card(card, artifact)
    return card


class SwappedLabels(torch.nn.Module):
    """A served network whose scores for two labels trade places: it loads, has the right shapes and answers
    confidently, but wrongly for those two digits."""

    def __init__(self, inner: torch.jit.ScriptModule, order: torch.Tensor) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("order", order)
        self.order: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).index_select(1, self.order)

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits, maps = self.inner.forward_features(x)
        return logits.index_select(1, self.order), maps


def swapped_labels_version(artifact: Path, root: Path, version: str, labels: tuple[int, int] = (3, 5)) -> Path:
    """A version in ``<root>/<version>/`` whose network is ``artifact``'s with the last layer's rows for
    ``labels`` exchanged (its outputs permuted), beside a card with its true hash: only the probes catch it."""
    inner = torch.jit.load(str(artifact), map_location="cpu").eval()
    order = torch.arange(len(load_card(artifact).labels))
    order[list(labels)] = order[list(reversed(labels))]
    copy = copy_version(artifact, root, version)
    torch.jit.script(SwappedLabels(inner, order).eval()).save(str(copy))
    recard(copy)
    return copy


def corrupt_version(artifact: Path, root: Path, version: str) -> Path:
    """A version whose file is the first half of ``artifact``'s, carded with that half's hash: the hash checks out,
    but the file does not load."""
    copy = copy_version(artifact, root, version)
    copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    recard(copy)
    return copy


def wrong_hash_version(artifact: Path, root: Path, version: str) -> Path:
    """A version whose file has one byte changed after its card was written."""
    copy = copy_version(artifact, root, version)
    data = bytearray(copy.read_bytes())
    data[-1] ^= 0xFF
    copy.write_bytes(bytes(data))
    return copy
