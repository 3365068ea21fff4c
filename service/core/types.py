"""Values that travel through the core: a batch's outputs, the request limits, one raw input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.core.errors import ApiError, ErrorCode

# An encoded image file, its base64 text (decoded with the image, off the event loop), or a 2-D array of gray values.
RawInput = bytes | str | np.ndarray


@dataclass(slots=True)  # one per request (its slice of the batch's): a frozen dataclass's __init__ costs 1 us more
class BatchOutput:
    """What the model says about a batch, as numpy arrays on the host."""

    probabilities: np.ndarray  # float32 [N, 10]
    features: dict[str, np.ndarray]  # only the layers asked for: name -> float32 [N, C, H, W]

    def __len__(self) -> int:
        return int(self.probabilities.shape[0])

    def slice(self, start: int, stop: int) -> BatchOutput:
        return BatchOutput(self.probabilities[start:stop], {k: v[start:stop] for k, v in self.features.items()})


@dataclass(frozen=True)
class Limits:
    max_images: int
    max_pixels: int

    def check_image_count(self, count: int) -> None:
        if count > self.max_images:
            raise ApiError(ErrorCode.too_many_images, f"{count} images in one request; the limit is {self.max_images}")
