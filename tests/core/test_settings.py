from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.core.settings import Settings


def test_defaults_are_sane() -> None:
    settings = Settings()
    assert settings.host == "127.0.0.1" and settings.port == 8000
    assert settings.backend == "embedded"
    assert settings.max_images_per_request <= settings.max_batch_size <= settings.max_queue_images


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MAX_BATCH_SIZE", "128")
    monkeypatch.setenv("DIGITS_BACKEND", "torchserve")
    settings = Settings()
    assert settings.max_batch_size == 128 and settings.backend == "torchserve"


def test_request_larger_than_a_batch_is_rejected_with_a_fix() -> None:
    with pytest.raises(ValidationError, match="raise the batch size or lower the limit"):
        Settings(max_images_per_request=100, max_batch_size=64)


def test_queue_smaller_than_a_batch_is_rejected() -> None:
    with pytest.raises(ValidationError, match="DIGITS_MAX_QUEUE_IMAGES"):
        Settings(max_queue_images=8, max_batch_size=16, max_images_per_request=8)


@pytest.mark.parametrize("field", ["max_body_bytes", "max_image_pixels", "max_images_per_request", "max_batch_size"])
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: 0})
