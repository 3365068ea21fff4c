"""Input and prediction drift of one served model: the statistics of its last images against its card's baseline.

Every answered image adds a row to a ring (its :class:`InputStats`, predicted class and top-1 confidence): the hot
path costs a row's copy. Every ``refresh_seconds`` the window is scored, one PSI per statistic (model/baseline.py
says why PSI), exported as gauges labelled by the model's version, and the preprocessing paths are counted. With
several worker processes each keeps the window of the images it served; the gauges report the highest worker's
score.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from model.baseline import INPUT_STATISTICS, STATISTICS, Baseline
from service.core.metrics import Metrics
from service.core.preprocessing import InputStats

PATHS = ("image", "pixels", "none")


class Score(NamedTuple):
    psi: float
    mean: float  # of the statistic over the window


class DriftMonitor:
    def __init__(
        self, baseline: Baseline, version: str, metrics: Metrics, *, window: int, refresh_seconds: float
    ) -> None:
        self.baseline = baseline
        self.refresh_seconds = refresh_seconds
        self._ring = np.full((window, len(STATISTICS)), np.nan)
        self._next = 0
        self._filled = 0
        self._refreshed = time.monotonic()
        self._scores = {name: metrics.drift_score.labels(version=version, statistic=name) for name in STATISTICS}
        self._means = {name: metrics.drift_window_mean.labels(version=version, statistic=name) for name in STATISTICS}
        self._window_images = metrics.drift_window_images.labels(version=version)
        self._paths = {path: metrics.preprocess_paths.labels(version=version, path=path) for path in PATHS}
        self._paths_seen = dict.fromkeys(PATHS, 0)  # since the last refresh, which adds them to the counters
        for name, statistic in baseline.statistics.items():
            metrics.drift_baseline_mean.labels(version=version, statistic=name).set(statistic.mean)

    @property
    def window(self) -> int:
        return len(self._ring)

    def observe(self, measured: Sequence[InputStats], probabilities: np.ndarray) -> None:
        """Add a request's images: their input statistics and the model's probabilities, in the same order."""
        count = len(probabilities)
        if count == 0 or len(measured) != count:
            return
        labels = probabilities.argmax(axis=1).tolist()
        confidences = probabilities.max(axis=1).tolist()
        ring, inputs = self._ring, len(INPUT_STATISTICS)
        for stats, label, confidence in zip(measured, labels, confidences, strict=True):
            ring[self._next] = (*stats[:inputs], label, confidence)
            self._next = (self._next + 1) % self.window
            self._paths_seen[stats.path] += 1
        self._filled = min(self._filled + count, self.window)
        if time.monotonic() - self._refreshed >= self.refresh_seconds:
            self.refresh()

    def scores(self) -> dict[str, Score]:
        """Each statistic's score over the window (statistics not measured in it left out)."""
        window = self._ring[: self._filled]
        found = {}
        for column, name in enumerate(STATISTICS):
            values = window[:, column]
            values = values[~np.isnan(values)]
            if len(values):
                found[name] = Score(self.baseline.statistics[name].psi(values), float(values.mean()))
        return found

    def refresh(self) -> dict[str, Score]:
        """Score the window now and export the scores; returns them."""
        self._refreshed = time.monotonic()
        scores = self.scores()
        for name, score in scores.items():
            self._scores[name].set(score.psi)
            self._means[name].set(score.mean)
        self._window_images.set(self._filled)
        for path, seen in self._paths_seen.items():
            if seen:
                self._paths[path].inc(seen)
                self._paths_seen[path] = 0
        return scores
