"""ECE, NLL, reliability bins and the temperature fit, on inputs whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from model.calibration import (
    ECE_BINS,
    calibration_metrics,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)


def two_class(confidence: np.ndarray) -> np.ndarray:
    """Probabilities over ten classes whose top class 0 has ``confidence`` and class 1 the rest."""
    probabilities = np.zeros((len(confidence), 10), dtype=np.float32)
    probabilities[:, 0], probabilities[:, 1] = confidence, 1 - confidence
    return probabilities


def test_confidence_that_matches_accuracy_has_no_calibration_error() -> None:
    # 80 % sure and right 8 times out of 10; 95 % sure and right 19 times out of 20.
    probabilities = two_class(np.array([0.8] * 10 + [0.95] * 20))
    labels = np.array([0] * 8 + [1] * 2 + [0] * 19 + [1])
    metrics = calibration_metrics(probabilities, labels)
    assert metrics.ece == pytest.approx(0.0, abs=1e-6)
    assert len(metrics.reliability) == ECE_BINS
    assert sum(row.count for row in metrics.reliability) == 30


def test_overconfidence_is_the_gap_weighted_by_bin_size() -> None:
    # 99 % sure but right half the time: a gap of 0.49 for every sample.
    probabilities = two_class(np.full(100, 0.99))
    labels = np.array([0, 1] * 50)
    assert calibration_metrics(probabilities, labels).ece == pytest.approx(0.49, abs=1e-6)


def test_bins_are_equal_width_and_hold_their_upper_edge() -> None:
    rows = reliability_bins(two_class(np.array([0.61, 0.66, 0.7, 1.0])), np.zeros(4, dtype=np.int64), bins=15)
    assert [row.upper for row in rows][-1] == 1.0
    counts = {round(row.upper, 4): row.count for row in rows if row.count}
    assert counts == {0.6667: 2, 0.7333: 1, 1.0: 1}  # 0.61 and 0.66 both lie in (0.6, 2/3]
    empty = [row for row in rows if not row.count]
    assert all(row.mean_confidence is None and row.accuracy is None for row in empty)


def test_nll_matches_cross_entropy() -> None:
    logits = torch.randn(50, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 10, (50,), generator=torch.Generator().manual_seed(1))
    probabilities = torch.softmax(logits, dim=1).numpy()
    expected = float(F.cross_entropy(logits, labels))
    assert negative_log_likelihood(probabilities, labels.numpy()) == pytest.approx(expected, rel=1e-5)


def test_temperature_fit_undoes_a_known_overconfidence() -> None:
    generator = torch.Generator().manual_seed(0)
    true_logits = 2 * torch.randn(20_000, 10, generator=generator)
    labels = torch.multinomial(torch.softmax(true_logits, dim=1), 1, generator=generator).squeeze(1)
    assert fit_temperature(3 * true_logits, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(true_logits / 2, labels) == pytest.approx(0.5, rel=0.05)
