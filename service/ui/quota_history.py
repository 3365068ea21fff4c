"""Per API key traffic and quota refusals, as the built-in dashboard charts them (service/core/quotas.py counts).

Every series is labelled by the key's name, never the key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client.samples import Sample

from service.core.api_keys import ApiKeys
from service.core.quotas import Quotas


@dataclass(frozen=True)
class KeyCounts:
    """The per key counters at one moment, by key name (refusals by key name, then quota)."""

    requests: dict[str, float]
    images: dict[str, float]
    refusals: dict[str, dict[str, float]]

    @classmethod
    def read(cls, samples: Iterable[Sample]) -> KeyCounts:
        requests: dict[str, float] = {}
        images: dict[str, float] = {}
        refusals: dict[str, dict[str, float]] = {}
        for sample in samples:
            if sample.name == "digits_key_requests_total":
                requests[sample.labels["key_name"]] = sample.value
            elif sample.name == "digits_key_images_total":
                images[sample.labels["key_name"]] = sample.value
            elif sample.name == "digits_quota_refusals_total":
                refusals.setdefault(sample.labels["key_name"], {})[sample.labels["quota"]] = sample.value
        return cls(requests, images, refusals)


@dataclass(frozen=True)
class KeyRates:
    """Per second between two readings, by key name: requests (refused ones too), requests and images admitted,
    and 429 refusals by quota."""

    requests: dict[str, float]
    admitted: dict[str, float]
    images: dict[str, float]
    refusals: dict[str, dict[str, float]]

    @classmethod
    def between(cls, before: KeyCounts, after: KeyCounts, seconds: float) -> KeyRates:
        # A series first seen after the earlier reading started at 0 in between (a key's first request).
        requests = _rates(before.requests, after.requests, seconds)
        refusals = {name: _rates(before.refusals.get(name, {}), counts, seconds)
                    for name, counts in after.refusals.items()}  # fmt: skip
        # Every request is counted on arrival and refused at most once, for its request or its images.
        admitted = {name: max(0.0, rate - sum(refusals.get(name, {}).values())) for name, rate in requests.items()}
        return cls(requests, admitted, _rates(before.images, after.images, seconds), refusals)


def _rates(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    return {name: max(0.0, count - before.get(name, 0.0)) / seconds for name, count in after.items()}


def quota_settings(keys: ApiKeys | None, quotas: Quotas | None) -> dict[str, Any]:
    """Whether keys are needed, and each key's quota by name (rates per second, None: unlimited)."""
    if keys is None or quotas is None:
        return {"keys_file": False, "keys": []}
    listed = []
    for caller in keys.callers():
        quota = quotas.quota(caller)
        listed.append({
            "name": caller.name,
            "requests_per_second": None if quota is None else quota.requests_per_second,
            "images_per_second": None if quota is None else quota.images_per_second,
        })  # fmt: skip
    return {"keys_file": True, "keys": listed}
