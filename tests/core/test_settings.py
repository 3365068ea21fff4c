from __future__ import annotations

import pytest
from pydantic import ValidationError

from service.core.settings import BatchingSettings, LimitsSettings, Settings


def test_defaults_are_sane() -> None:
    settings = Settings()
    assert settings.server.host == "127.0.0.1" and settings.server.port == 8000
    assert settings.model.backend == "embedded"
    batching = settings.batching
    assert settings.limits.max_images_per_request <= batching.max_batch_size <= batching.max_queue_images


def test_environment_names_are_kept_across_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGITS_MAX_BATCH_SIZE", "128")
    monkeypatch.setenv("DIGITS_BACKEND", "torchserve")
    monkeypatch.setenv("DIGITS_API_KEYS_FILE", "/etc/digits/keys")
    monkeypatch.setenv("DIGITS_DASHBOARD_ROUTE", "/v2")
    settings = Settings()
    assert settings.batching.max_batch_size == 128 and settings.model.backend == "torchserve"
    assert str(settings.auth.api_keys_file) == "/etc/digits/keys" and settings.telemetry.dashboard_route == "/v2"


def test_request_larger_than_a_batch_is_rejected_with_a_fix() -> None:
    with pytest.raises(ValidationError, match="raise the batch size or lower the limit"):
        Settings(limits=LimitsSettings(max_images_per_request=100), batching=BatchingSettings(max_batch_size=64))


def test_queue_smaller_than_a_batch_is_rejected() -> None:
    with pytest.raises(ValidationError, match="DIGITS_MAX_QUEUE_IMAGES"):
        BatchingSettings(max_queue_images=8, max_batch_size=16)


@pytest.mark.parametrize(
    ("group", "field"),
    [
        (LimitsSettings, "max_body_bytes"),
        (LimitsSettings, "max_image_pixels"),
        (LimitsSettings, "max_images_per_request"),
        (BatchingSettings, "max_batch_size"),
    ],
)
def test_limits_must_be_positive(group: type[LimitsSettings | BatchingSettings], field: str) -> None:
    with pytest.raises(ValidationError):
        group(**{field: 0})
