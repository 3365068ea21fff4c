"""The deploy Prometheus configuration re-aimed at loopback: only the targets change, and promtool accepts it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ops.monitoring.config import (
    DEFAULT_PROMETHEUS_CONFIG,
    PrometheusConfigError,
    load_config,
    with_targets,
    write_config,
)

LOCAL_TARGETS = {"gateway": ["127.0.0.1:8123"], "torchserve": ["127.0.0.1:8082"]}


def without_targets(config: dict[str, Any]) -> dict[str, Any]:
    jobs = [{k: v for k, v in job.items() if not k.endswith("_sd_configs") and k != "static_configs"}
            for job in config["scrape_configs"]]  # fmt: skip
    return {**config, "scrape_configs": jobs}


def test_the_deploy_config_discovers_the_compose_services() -> None:
    config = load_config(DEFAULT_PROMETHEUS_CONFIG)
    discovered = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert discovered["gateway"]["names"] == ["gateway"] and discovered["gateway"]["port"] == 8000
    assert discovered["torchserve"]["names"] == ["torchserve"] and discovered["torchserve"]["port"] == 8082


def test_only_the_targets_change() -> None:
    original = load_config(DEFAULT_PROMETHEUS_CONFIG)
    local = with_targets(original, LOCAL_TARGETS)
    assert without_targets(local) == without_targets(original)
    for job in local["scrape_configs"]:
        assert job["static_configs"] == [{"targets": LOCAL_TARGETS[job["job_name"]]}]
        assert not [key for key in job if key.endswith("_sd_configs")]
    assert "static_configs" not in original["scrape_configs"][0], "the original must stay untouched"


def test_a_job_can_be_left_without_targets() -> None:
    local = with_targets(load_config(DEFAULT_PROMETHEUS_CONFIG), {**LOCAL_TARGETS, "torchserve": []})
    torchserve = next(job for job in local["scrape_configs"] if job["job_name"] == "torchserve")
    assert torchserve["static_configs"] == [{"targets": []}]


def test_the_scrape_interval_override_keeps_the_timeout_valid() -> None:
    local = with_targets(load_config(DEFAULT_PROMETHEUS_CONFIG), LOCAL_TARGETS, scrape_interval="1s")
    assert local["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ({"gateway": ["127.0.0.1:1"]}, "no local address for the scrape job"),
        ({**LOCAL_TARGETS, "grafana": ["127.0.0.1:3000"]}, "has no scrape job"),
    ],
)
def test_every_job_needs_exactly_one_entry(targets: dict[str, list[str]], message: str) -> None:
    with pytest.raises(PrometheusConfigError, match=message):
        with_targets(load_config(DEFAULT_PROMETHEUS_CONFIG), targets)


def test_a_missing_or_foreign_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PrometheusConfigError, match="pass --config"):
        load_config(tmp_path / "nope.yml")
    (tmp_path / "other.yml").write_text("global: {}\n")
    with pytest.raises(PrometheusConfigError, match="no scrape_configs"):
        load_config(tmp_path / "other.yml")


def test_the_written_config_carries_its_rules_and_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    local = with_targets(load_config(DEFAULT_PROMETHEUS_CONFIG), LOCAL_TARGETS, scrape_interval="1s")
    written = write_config(local, DEFAULT_PROMETHEUS_CONFIG, tmp_path)
    rules = sorted(p.name for p in (DEFAULT_PROMETHEUS_CONFIG.parent / "rules").glob("*.yml"))
    assert rules and sorted(p.name for p in (tmp_path / "rules").glob("*.yml")) == rules
    check = subprocess.run([promtool, "check", "config", str(written)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(rules)} rule files found" in check.stdout + check.stderr
