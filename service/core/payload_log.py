"""Sampled payload logging, off by default: at most ``per_second`` requests a second have each image written as a
JSON line (the 28x28 field the model saw, its probabilities, the model's version, the trace id, and a ``label``
left null for whoever reviews the file), in files rotated by size. docs/operations.md has the privacy note.

Each worker process writes files of its own (``payloads-<pid>.jsonl``, rotated to ``.1``, ``.2``...).
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path

import numpy as np
import orjson

from model.card import ModelCard
from model.payload_records import FIELD_KEY, LABEL_KEY


class PayloadLog:
    def __init__(self, directory: Path, card: ModelCard, *, per_second: float, max_bytes: int, backups: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"payloads-{os.getpid()}.jsonl"
        self.card = card
        self.per_second = per_second
        self._allowance = 1.0
        self._stamp = time.monotonic()
        self._handler = RotatingFileHandler(self.path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._logger = logging.Logger(f"digits.payloads.{id(self)}")
        self._logger.propagate = False
        self._logger.addHandler(self._handler)

    def sample(self) -> bool:
        """Whether this request is logged: a token bucket of one request, refilled at ``per_second``."""
        now = time.monotonic()
        self._allowance = min(1.0, self._allowance + (now - self._stamp) * self.per_second)
        self._stamp = now
        if self._allowance < 1.0:
            return False
        self._allowance -= 1.0
        return True

    def write(self, batch: np.ndarray, probabilities: np.ndarray, trace_id: str | None = None) -> None:
        """One line per image of a request: ``batch`` is its normalized ``[n, 1, 28, 28]`` input."""
        spec = self.card.input
        fields = np.rint(np.clip((batch[:, 0] * spec.std + spec.mean) * 255.0, 0, 255)).astype(np.uint8)
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        model = {"name": self.card.name, "version": self.card.version}
        for field, row in zip(fields, probabilities, strict=True):
            record = {
                "time": at,
                "model": model,
                "trace_id": trace_id,
                FIELD_KEY: field.tolist(),
                "probabilities": [round(float(p), 6) for p in row],
                "predicted": int(row.argmax()),
                LABEL_KEY: None,
            }
            self._logger.info(orjson.dumps(record).decode())

    def close(self) -> None:
        self._handler.close()
