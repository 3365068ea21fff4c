"""Request-path observations kept as plain numbers, and added to their Prometheus children in one go.

A request makes about ten observations (its stages, its version's latency, count, labels and confidence).
Through prometheus-client each is a method call with a check and one or two locked increments: 1-1.4 us, about
5 % of a 32-connection pixel request. A tally is a bucket index found with ``bisect`` and two additions.

:class:`Tallies` adds every tally to its child whenever the registry is read: it is the registry's first collector,
so ``/metrics``, the dashboard and Prometheus never see a value behind. With several workers, each worker's values
reach the shared files the others read at least once a second (:meth:`Tallies.flush_every`).

Histograms have no public way to add many observations at once: :class:`HistogramTally` adds to the child's own
sum and bucket values (``_sum``, ``_buckets``, ``_upper_bounds``), the ones ``Histogram.observe`` adds to.
docs/architecture.md lists the reach, the package pins the tested minor, and construction refuses a release whose
histograms are built otherwise. All tallies live on the event loop's thread.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric


class HistogramTally:
    __slots__ = ("_bounds", "_bucket_values", "_counts", "_sum", "_sum_value")

    def __init__(self, child: Histogram) -> None:
        bounds: Any = getattr(child, "_upper_bounds", None)
        buckets: Any = getattr(child, "_buckets", None)
        total: Any = getattr(child, "_sum", None)
        if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
            raise RuntimeError(
                "this prometheus-client builds histograms unlike the release service/core/tally.py was tested on:"
                " install the version pyproject.toml pins"
            )
        self._bounds: tuple[float, ...] = tuple(bounds)  # ascending, +Inf last
        self._bucket_values = buckets
        self._sum_value = total
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """As ``Histogram.observe(value)``, once flushed: the first bucket whose bound is at least ``value``."""
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def flush(self) -> None:
        counts = self._counts
        if not any(counts):
            return
        for index, count in enumerate(counts):
            if count:
                self._bucket_values[index].inc(count)
                counts[index] = 0
        self._sum_value.inc(self._sum)
        self._sum = 0.0


class CounterTally:
    __slots__ = ("_child", "count")

    def __init__(self, child: Counter) -> None:
        self._child = child
        self.count = 0.0  # added since the last flush: ``tally.count += n`` on the request path

    def flush(self) -> None:
        if self.count:
            self._child.inc(self.count)
            self.count = 0.0


class Tallies:
    """The tallies of one registry, a collector with no metrics of its own that flushes them when collected:
    register it on the registry before any other collector."""

    def __init__(self) -> None:
        self._tallies: list[HistogramTally | CounterTally] = []

    def histogram(self, child: Histogram) -> HistogramTally:
        tally = HistogramTally(child)
        self._tallies.append(tally)
        return tally

    def counter(self, child: Counter) -> CounterTally:
        tally = CounterTally(child)
        self._tallies.append(tally)
        return tally

    def flush(self) -> None:
        for tally in self._tallies:
            tally.flush()

    def describe(self) -> Iterable[Metric]:
        return []  # no metrics of its own (and the registry need not collect it to learn their names)

    def collect(self) -> Iterable[Metric]:
        self.flush()
        return []

    async def flush_every(self, seconds: float) -> None:
        """Flush until cancelled: with several workers, the other workers read this one's values from files."""
        while True:
            await asyncio.sleep(seconds)
            self.flush()
