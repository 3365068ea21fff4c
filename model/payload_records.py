"""The payload log's records as training data: JSON lines of 28x28 fields that a person has given a ``label``.

The gateway writes one line per sampled image (service/core/payload_log.py) with ``"label": null``; whoever
reviews the file fills in the true digit (or deletes the line). ``digits train --extra-data FILE`` trains on the
lines whose label is set, besides MNIST's training digits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from model.card import file_sha256
from model.mnist import Mnist, Split

FIELD_KEY = "field"  # the 28x28 MNIST-style field the model saw: rows of 0-255, ink bright
LABEL_KEY = "label"  # the true digit, null until someone labels the record


class PayloadRecordError(ValueError):
    """A line that claims a label but is not a usable digit; the message names the file and line."""


def labelled_digits(paths: Iterable[Path]) -> tuple[np.ndarray, np.ndarray]:
    """The labelled records of the files: uint8 ``[n, 28, 28]`` fields and int64 ``[n]`` labels."""
    fields: list[np.ndarray] = []
    labels: list[int] = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            label = record.get(LABEL_KEY)
            if label is None:
                continue
            field = np.asarray(record.get(FIELD_KEY), dtype=np.float64)
            if not (isinstance(label, int) and 0 <= label <= 9) or field.shape != (28, 28):
                raise PayloadRecordError(f"{path}, line {number}: a label 0-9 and a 28x28 field are needed")
            if not (field.min() >= 0 and field.max() <= 255):
                raise PayloadRecordError(f"{path}, line {number}: field values must lie in 0-255")
            fields.append(np.rint(field).astype(np.uint8))
            labels.append(label)
    if not fields:
        return np.empty((0, 28, 28), np.uint8), np.empty(0, np.int64)
    return np.stack(fields), np.array(labels, dtype=np.int64)


def with_extra_digits(data: Mnist, paths: Sequence[Path], held_out: int) -> Mnist:
    """``data`` with the labelled records of ``paths`` added to the training digits, before the last ``held_out``
    (which training keeps for calibration), and each file's sha256 among the data's."""
    fields, labels = labelled_digits(paths)
    end = len(data.train.labels) - held_out
    train = Split(
        images=np.concatenate([data.train.images[:end], fields, data.train.images[end:]]),
        labels=np.concatenate([data.train.labels[:end], labels, data.train.labels[end:]]),
    )
    return Mnist(train=train, test=data.test, sha256=data.sha256 | {p.name: file_sha256(p) for p in paths})
