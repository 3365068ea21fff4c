"""The alert rules of deploy/prometheus: valid (promtool check), correct (promtool's unit tests), on our metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.metric_names import gateway_series_names

PROMETHEUS_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))

# What the issue asks the alerts to cover, and the alert that does.
REQUIRED_ALERTS = {
    "p99 latency above the SLO for 5 minutes": "DigitsPredictLatencyAboveSLO",
    "error ratio": "DigitsServerErrorRatioHigh",
    "queue saturation": "DigitsQueueSaturated",
    "target down": "DigitsTargetDown",
    "no traffic": "DigitsNoTraffic",
    "a rollout rolled back by a gate": "DigitsRolloutRolledBack",
    "a model version refused at load": "DigitsModelVersionRefused",
}
# Series TorchServe exports (checked against a live TorchServe in tests/test_monitoring.py).
TORCHSERVE_METRICS = {
    "ts_queue_latency_microseconds",
    "ts_inference_requests_total",
    "ts_inference_latency_microseconds",
}
PROMQL_NAMES = re.compile(r"\b(digits_[a-z_]+|ts_[a-z_]+)\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    return path


def alert_rules() -> list[dict[str, Any]]:
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules.extend(rule for rule in group["rules"] if "alert" in rule)
    return rules


def test_there_are_rule_files_and_tests() -> None:
    assert RULE_FILES and RULE_TESTS


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_check_rules(path: Path) -> None:
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_of_the_alerts(path: Path) -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", path.name], cwd=path.parent, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_tests_cover_every_alert() -> None:
    tested = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            tested.update(check["alertname"] for check in case.get("alert_rule_test", []) if check["exp_alerts"])
    assert tested == {rule["alert"] for rule in alert_rules()}


def test_the_required_alerts_exist_with_a_duration_severity_and_summary() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert not set(REQUIRED_ALERTS.values()) - set(rules)
    assert rules["DigitsPredictLatencyAboveSLO"]["for"] == "5m"
    for name, rule in rules.items():
        assert rule.get("for"), f"{name} fires on a single evaluation"
        assert rule["labels"]["severity"] in {"page", "warning"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_the_rules_use_only_metrics_that_exist() -> None:
    known = gateway_series_names() | TORCHSERVE_METRICS
    used = {name for rule in alert_rules() for name in PROMQL_NAMES.findall(rule["expr"])}
    assert used and not used - known, f"unknown series: {sorted(used - known)}"


def test_the_deploy_config_loads_the_rules() -> None:
    config = PROMETHEUS_DIR / "prometheus.yml"
    result = subprocess.run([promtool(), "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in result.stdout + result.stderr
