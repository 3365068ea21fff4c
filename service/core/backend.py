"""The interface every backend implements: set up, predict a batch, report readiness, close."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from service.core.types import BatchOutput


class Backend(ABC):
    """A model behind the batcher. ``predict`` takes normalized float32 ``[N, 1, 28, 28]``."""

    name: str
    # How many batches may be running at once: 1 for a model on our own thread; more for a
    # remote server with several workers, so that none of them waits for the previous batch's reply.
    max_batches_in_flight: int = 1
    # Whether ``predict_now`` can run the model in the caller's thread: for a model in this process, where one
    # small batch on an idle model costs less run right there than handed to the model's thread and back.
    predicts_inline: bool = False

    @property
    @abstractmethod
    def device(self) -> str: ...

    @abstractmethod
    async def setup(self) -> None:
        """Load and warm up; after this returns the backend can serve."""

    @abstractmethod
    async def predict(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        """Probabilities of ``batch``, and the feature maps of ``layers`` (empty: none)."""

    def predict_now(self, batch: np.ndarray, layers: frozenset[str]) -> BatchOutput:
        """As ``predict``, in the caller's thread; only when ``predicts_inline`` and no other batch is running."""
        raise NotImplementedError(f"the {self.name} backend does not predict inline")

    @abstractmethod
    async def ready(self) -> bool:
        """Whether a prediction sent now would be served."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
