"""The drift monitor's training baseline: how each input and prediction statistic was spread over the digits a model
learnt from, as bins that a serving window is compared with by the population stability index (PSI).

PSI rather than a two-sample KS statistic: it needs only the baseline's bin proportions (a few numbers in the card,
no sample of digits), a window's score is computed from its bin counts, and it scores categorical statistics (the
polarity decision, the predicted class) the same way as continuous ones, where KS is undefined. Its usual reading:
below 0.1 no shift, 0.1-0.25 a moderate one, above 0.25 a major one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
from pydantic import BaseModel, Field

# In the order service.core.preprocessing.InputStats holds them.
INPUT_STATISTICS = ("ink", "box_fill", "box_aspect", "mass_offset_x", "mass_offset_y", "inverted")
PREDICTION_STATISTICS = ("predicted_class", "confidence")
STATISTICS = INPUT_STATISTICS + PREDICTION_STATISTICS
# Statistics with a few values of their own: a bin per value rather than deciles.
CATEGORY_EDGES = {"inverted": [0.5], "predicted_class": [k + 0.5 for k in range(9)]}
QUANTILE_BINS = 10
# A bin that holds nothing holds this share in the score: an empty baseline bin costs a large but finite score.
FLOOR = 1e-4


class StatisticBaseline(BaseModel):
    """One statistic's bins: bin 0 holds values below ``edges[0]``, bin i values in ``[edges[i-1], edges[i])``."""

    edges: list[float]
    proportions: list[float] = Field(description="Share of the baseline digits in each bin (len(edges) + 1)")
    mean: float

    @classmethod
    def of(cls, values: np.ndarray, edges: Sequence[float] | None = None) -> Self:
        """The baseline of ``values``: bins at ``edges``, or at the deciles of the values."""
        values = np.asarray(values, dtype=np.float64)
        if edges is None:
            edges = np.unique(np.quantile(values, np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1])).tolist()
        counts = bin_counts(list(edges), values)
        return cls(
            edges=[float(e) for e in edges],
            proportions=[round(float(c), 6) for c in counts / counts.sum()],
            mean=round(float(values.mean()), 6),
        )

    def psi(self, values: np.ndarray) -> float:
        """The population stability index of ``values`` against this baseline (0 for no values)."""
        counts = bin_counts(self.edges, values)
        total = counts.sum()
        if total == 0:
            return 0.0
        actual = np.maximum(counts / total, FLOOR)
        expected = np.maximum(np.asarray(self.proportions), FLOOR)
        return float(((actual - expected) * np.log(actual / expected)).sum())


def bin_counts(edges: Sequence[float], values: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


class Baseline(BaseModel):
    """Every statistic's baseline, and where it comes from."""

    description: str = Field(description="Which digits the input and prediction statistics were measured on")
    input_samples: int
    prediction_samples: int
    statistics: dict[str, StatisticBaseline]

    @classmethod
    def of(cls, inputs: np.ndarray, probabilities: np.ndarray, description: str) -> Self:
        """``inputs``: ``[n, len(INPUT_STATISTICS)]``; ``probabilities``: the model's ``[m, classes]``."""
        columns = dict(zip(INPUT_STATISTICS, np.asarray(inputs, dtype=np.float64).T, strict=True))
        columns["predicted_class"] = probabilities.argmax(axis=1).astype(np.float64)
        columns["confidence"] = probabilities.max(axis=1).astype(np.float64)
        statistics = {name: StatisticBaseline.of(columns[name], CATEGORY_EDGES.get(name)) for name in STATISTICS}
        return cls(
            description=description,
            input_samples=len(inputs),
            prediction_samples=len(probabilities),
            statistics=statistics,
        )
