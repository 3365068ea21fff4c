"""The series names the gateway exports, as PromQL sees them (for checking queries and rules)."""

from __future__ import annotations

from service.core.metrics import Metrics

SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def gateway_series_names() -> set[str]:
    """Every name a scrape of the gateway can hold, whether or not a labelled child exists yet."""
    return {f"{family.name}{suffix}" for family in Metrics().registry.collect() for suffix in SUFFIXES[family.type]}
