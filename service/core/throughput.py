"""How long the model takes for a batch, learnt from the batches it actually ran, and so how long a queue waits."""

from __future__ import annotations

import math


class Throughput:
    """A batch of ``n`` images takes ``overhead + n * per_image`` seconds, fitted by least squares over recent
    batches (exponentially weighted). A small batch costs mostly its overhead, so a rate taken from small
    batches alone would make a queue look many times slower to drain than the full batches it becomes."""

    def __init__(self, max_batch_size: int, parallel_batches: int = 1, smoothing: float = 0.1) -> None:
        self._max_batch_size = max_batch_size
        self._parallel = parallel_batches
        self._smoothing = smoothing
        self._batches = 0
        # Weighted means of n, t, n*n and n*t.
        self._n = self._t = self._nn = self._nt = 0.0

    def record(self, images: int, seconds: float) -> None:
        a = 1.0 if self._batches == 0 else self._smoothing
        self._batches += 1
        self._n += a * (images - self._n)
        self._t += a * (seconds - self._t)
        self._nn += a * (images * images - self._nn)
        self._nt += a * (images * seconds - self._nt)

    def batch_seconds(self, images: int) -> float:
        """Expected time of one batch of ``images`` (0 before any batch ran)."""
        if self._batches == 0:
            return 0.0
        spread = self._nn - self._n * self._n
        per_image = (self._nt - self._n * self._t) / spread if spread > 0.25 else -1.0
        overhead = self._t - per_image * self._n
        if per_image < 0 or overhead < 0:  # too little spread in sizes to tell: assume no overhead
            per_image, overhead = self._t / max(self._n, 1.0), 0.0
        return overhead + per_image * images

    @property
    def images_per_second(self) -> float | None:
        """At full batches; None until a batch has run."""
        full = self.batch_seconds(self._max_batch_size)
        return self._parallel * self._max_batch_size / full if full > 0 else None

    def seconds_to_serve(self, images: int) -> float:
        """Expected time until ``images`` queued now have all been taken by the model, in full batches."""
        if images <= 0:
            return 0.0
        full, rest = divmod(images, self._max_batch_size)
        seconds = full * self.batch_seconds(self._max_batch_size) + (self.batch_seconds(rest) if rest else 0.0)
        return seconds / self._parallel if math.isfinite(seconds) else 0.0
