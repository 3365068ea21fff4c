"""Tracing is switched by the SDK's own OTEL_* variables, and off it costs not even the SDK's import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from service.core.telemetry.otel_environment import tracing_from_environment
from tests.servers import REPO


def test_tracing_is_off_unless_an_exporter_is_named() -> None:
    assert tracing_from_environment({}) is None
    assert tracing_from_environment({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert tracing_from_environment({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None
    with pytest.raises(ValueError, match="zipkin"):
        tracing_from_environment({"OTEL_TRACES_EXPORTER": "zipkin"})


def test_off_the_sdk_is_not_even_imported() -> None:
    script = (
        "import sys; from service.app import create_app; create_app(); "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry.sdk')))"
    )
    env = {"PATH": "", "OTEL_TRACES_EXPORTER": "none"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
