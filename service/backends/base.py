"""The interface every backend implements: set up, predict a batch, report readiness, close."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchOutput:
    """What the model says about a batch, as numpy arrays on the host."""

    probabilities: np.ndarray  # float32 [N, 10]
    features: dict[str, np.ndarray] | None  # layer name -> float32 [N, C, H, W], in network order

    def __len__(self) -> int:
        return int(self.probabilities.shape[0])

    def slice(self, start: int, stop: int) -> BatchOutput:
        features = None if self.features is None else {k: v[start:stop] for k, v in self.features.items()}
        return BatchOutput(self.probabilities[start:stop], features)


class Backend(ABC):
    """A model behind the batcher. ``predict`` takes normalized float32 ``[N, 1, 28, 28]``."""

    name: str
    # How many batches may be running at once: 1 for a model on our own thread; more for a
    # remote server with several workers, so that none of them waits for the previous batch's reply.
    max_batches_in_flight: int = 1

    @property
    @abstractmethod
    def device(self) -> str: ...

    @abstractmethod
    async def setup(self) -> None:
        """Load and warm up; after this returns the backend can serve."""

    @abstractmethod
    async def predict(self, batch: np.ndarray, with_features: bool) -> BatchOutput: ...

    @abstractmethod
    async def ready(self) -> bool:
        """Whether a prediction sent now would be served."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
