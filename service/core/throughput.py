"""How fast the model serves images when it is busy, measured from the batches it actually ran."""

from __future__ import annotations


class Throughput:
    """Images per second over recent batches (exponentially weighted), and the time a queue takes to drain.

    Sums of images and of seconds are smoothed separately, so that one tiny batch (with its fixed
    overhead) does not swing the rate as much as a full one carries it.
    """

    def __init__(self, parallel_batches: int = 1, smoothing: float = 0.2) -> None:
        self._parallel = parallel_batches
        self._smoothing = smoothing
        self._images = 0.0
        self._seconds = 0.0

    def record(self, images: int, seconds: float) -> None:
        if self._seconds == 0.0:
            self._images, self._seconds = float(images), seconds
            return
        a = self._smoothing
        self._images += a * (images - self._images)
        self._seconds += a * (seconds - self._seconds)

    @property
    def images_per_second(self) -> float | None:
        """None until a batch has run."""
        if self._seconds <= 0.0:
            return None
        return self._parallel * self._images / self._seconds

    def seconds_to_serve(self, images: int) -> float:
        """Expected time until ``images`` queued now have been taken by the model (0 before any measurement)."""
        rate = self.images_per_second
        return images / rate if rate else 0.0
