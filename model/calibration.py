"""Whether confidence means what it says: ECE, NLL and reliability bins, and temperature scaling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from model.card import CalibrationMetrics, ReliabilityBin

ECE_BINS = 15


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[ReliabilityBin]:
    """Predictions grouped by confidence (the top probability) into equal-width bins over [0, 1]."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin i holds (i/bins, (i+1)/bins]; a confidence of exactly 0 cannot occur for a softmax.
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    rows = []
    for i in range(bins):
        members = index == i
        count = int(members.sum())
        rows.append(
            ReliabilityBin(
                lower=round(i / bins, 6),
                upper=round((i + 1) / bins, 6),
                count=count,
                mean_confidence=round(float(confidence[members].mean()), 6) if count else None,
                accuracy=round(float(correct[members].mean()), 6) if count else None,
            )
        )
    return rows


def expected_calibration_error(rows: list[ReliabilityBin]) -> float:
    """Sum over bins of |accuracy - mean confidence|, weighted by the bin's share of the samples."""
    total = sum(row.count for row in rows)
    gaps = [
        row.count * abs(row.accuracy - row.mean_confidence)
        for row in rows
        if row.count and row.accuracy is not None and row.mean_confidence is not None
    ]
    return float(sum(gaps) / total)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean of -log p(true label), in nats; probabilities clipped away from 0 so one miss stays finite."""
    picked = probabilities[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, None)).mean())


def calibration_metrics(probabilities: np.ndarray, labels: np.ndarray) -> CalibrationMetrics:
    rows = reliability_bins(probabilities, labels)
    return CalibrationMetrics(
        ece=round(expected_calibration_error(rows), 6),
        nll=round(negative_log_likelihood(probabilities, labels), 6),
        reliability=rows,
    )


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The T > 0 minimizing the NLL of ``softmax(logits / T)`` (LBFGS on log T, so T stays positive)."""
    logits, labels = logits.detach().double(), labels.long()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())
