"""Sampled payload logging through the real inference object, and its files read back as training data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.card import load_card
from model.mnist import Mnist, Split
from model.payload_records import PayloadRecordError, labelled_digits, with_extra_digits
from service.core.metrics import Metrics
from service.core.payload_log import PayloadLog
from service.core.types import Limits
from tests.core.test_inference import build, call_of


async def test_sampled_requests_are_logged_with_their_field_outputs_and_version(
    artifact: Path, labelled_digits: Split, tmp_path: Path
) -> None:
    inference = build(artifact, Metrics())
    card = load_card(artifact)
    # One request a day: the first is logged, the rest of the burst is not.
    inference.payload_log = PayloadLog(tmp_path, card, per_second=1 / 86400, max_bytes=1 << 20, backups=1)
    digits = Split(labelled_digits.images[:3], labelled_digits.labels[:3])
    await inference.start(wait=True)
    try:
        for _ in range(3):

            async def read(_: Limits) -> object:
                return call_of(digits)

            await inference.run(read)  # type: ignore[arg-type]
    finally:
        await inference.stop()
    (path,) = tmp_path.glob("payloads-*.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 3
    assert [r["predicted"] for r in records] == digits.labels.tolist()
    assert all(r["model"] == {"name": card.name, "version": card.version} for r in records)
    assert all(r["trace_id"] is None and r["label"] is None for r in records)
    np.testing.assert_array_equal(np.array([r["field"] for r in records], np.uint8), digits.images)


def test_the_files_rotate_by_size(artifact: Path, tmp_path: Path) -> None:
    log = PayloadLog(tmp_path, load_card(artifact), per_second=1e9, max_bytes=8192, backups=2)
    batch = np.zeros((1, 1, 28, 28), np.float32)
    for _ in range(20):
        log.write(batch, np.full((1, 10), 0.1, np.float32))
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 3 and all(p.stat().st_size <= 8192 for p in tmp_path.iterdir()), files


def test_labelled_records_become_training_digits_before_the_held_out_ones(tmp_path: Path) -> None:
    field = np.arange(784).reshape(28, 28) % 256
    lines = [
        {"field": field.tolist(), "label": 7},
        {"field": field.tolist(), "label": None},  # not reviewed: skipped
    ]
    path = tmp_path / "payloads.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    images, labels = labelled_digits([path])
    assert images.shape == (1, 28, 28) and labels.tolist() == [7]
    mnist = Split(np.zeros((5, 28, 28), np.uint8), np.arange(5))
    data = with_extra_digits(Mnist(mnist, mnist, {}), [path], held_out=2)
    assert data.train.labels.tolist() == [0, 1, 2, 7, 3, 4]
    np.testing.assert_array_equal(data.train.images[3], field)
    assert "payloads.jsonl" in data.sha256
    path.write_text(json.dumps({"field": [[1, 2]], "label": 3}) + "\n")
    with pytest.raises(PayloadRecordError, match="line 1"):
        labelled_digits([path])
