"""Input and prediction drift of one served model: the statistics of its last images against its card's baseline.

Every answered image adds a row to a ring (its :class:`InputStats`, predicted class and top-1 confidence). The
request path appends the request's rows to a flat array of doubles; they reach the ring in one numpy copy when the
window is read, or when a window's worth is waiting. Every ``refresh_seconds`` the window is
scored, one PSI per statistic (model/baseline.py says why PSI), exported as gauges labelled by the model's version,
and the preprocessing paths are counted. With several worker processes each keeps the window of the images it
served; the gauges report the highest worker's score.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Sequence
from typing import NamedTuple, cast

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
        self,
        baseline: Baseline,
        version: str,
        metrics: Metrics,
        *,
        window: int,
        refresh_seconds: float,
        requests_per_second: float | None = None,
    ) -> None:
        self.baseline = baseline
        self.refresh_seconds = refresh_seconds
        self.requests_per_second = requests_per_second  # the most requests measured a second; None: every one
        self._allowance = requests_per_second or 0.0
        self._allowed_at = time.monotonic()
        self._ring = np.full((window, len(STATISTICS)), np.nan)
        self._next = 0
        self._filled = 0
        self._refreshed = time.monotonic()
        self._scores = {name: metrics.drift_score.labels(version=version, statistic=name) for name in STATISTICS}
        self._means = {name: metrics.drift_window_mean.labels(version=version, statistic=name) for name in STATISTICS}
        self._window_images = metrics.drift_window_images.labels(version=version)
        self._paths = {path: metrics.preprocess_paths.labels(version=version, path=path) for path in PATHS}
        self._paths_seen = dict.fromkeys(PATHS, 0)  # since the last refresh, which adds them to the counters
        # Rows not in the ring yet, as plain doubles: numbers the garbage collector never has to look at (a list of
        # tuples kept for a while makes every collection of young objects longer).
        self._pending = array("d")
        for name, statistic in baseline.statistics.items():
            metrics.drift_baseline_mean.labels(version=version, statistic=name).set(statistic.mean)

    @property
    def window(self) -> int:
        return len(self._ring)

    def measuring(self) -> bool:
        """Whether to measure the next request: every one up to ``requests_per_second``, then as many as that rate
        allows (a token bucket a second deep). A drift window needs a sample of the traffic, not all of it, and
        measuring costs a few microseconds a request, a share that matters on the cheapest requests."""
        rate = self.requests_per_second
        if rate is None:
            return True
        now = time.monotonic()
        allowance = min(rate, self._allowance + (now - self._allowed_at) * rate)
        self._allowed_at = now
        if allowance < 1.0:
            self._allowance = allowance
            return False
        self._allowance = allowance - 1.0
        return True

    def observe(self, measured: Sequence[InputStats], labels: Sequence[int], confidences: Sequence[float]) -> None:
        """Add a request's images: their input statistics, and the model's label and top-1 probability for each."""
        if len(measured) != len(labels):
            return
        pending, paths, inputs = self._pending, self._paths_seen, len(INPUT_STATISTICS)
        for stats, label, confidence in zip(measured, labels, confidences, strict=True):
            pending.extend(cast("tuple[float, ...]", stats[:inputs]))  # the statistics before the path
            pending.append(label)
            pending.append(confidence)
            paths[stats.path] += 1
        if len(pending) >= self._ring.size:
            self._fold()
        if time.monotonic() - self._refreshed >= self.refresh_seconds:
            self.refresh()

    def _fold(self) -> None:
        """Move the waiting rows into the ring (only the newest window's worth can stay in it)."""
        if not self._pending:
            return
        window = self.window
        rows = np.frombuffer(self._pending, np.float64).reshape(-1, len(STATISTICS))[-window:]
        positions = (self._next + np.arange(len(rows))) % window
        self._ring[positions] = rows
        self._pending = array("d")
        self._next = int(positions[-1] + 1) % window
        self._filled = min(self._filled + len(rows), window)

    def scores(self) -> dict[str, Score]:
        """Each statistic's score over the window (statistics not measured in it left out)."""
        self._fold()
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
