"""Quantiles of a Prometheus histogram's buckets, as ``histogram_quantile()`` computes them."""

from __future__ import annotations

import math

Buckets = tuple[tuple[float, float], ...]  # (upper bound "le", cumulative count), ascending, ending at +Inf


def histogram_quantile(q: float, buckets: Buckets) -> float | None:
    """The ``q`` quantile of a cumulative histogram, interpolated within its bucket as Prometheus does.

    None when the histogram is empty. A rank in the +Inf bucket yields the highest finite bound.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(upper_bound):
                return lower_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper_bound, count
    return lower_bound
