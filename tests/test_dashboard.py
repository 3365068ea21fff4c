"""The Grafana dashboard and its provisioning, read as Grafana would read them.

Every query is also run against a real Prometheus in tests/ops/test_monitoring.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.metric_names import gateway_series_names

ROOT = Path(__file__).resolve().parent.parent
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "digits.json"
ALERT_RULES = ROOT / "deploy" / "prometheus" / "rules" / "digits-alerts.yml"
GRID_COLUMNS = 24

# What the issue asks the dashboard to show: a pattern one of its queries must match.
REQUIRED_QUERIES = {
    "request rate by status": r"sum by \(status\) \(rate\(digits_http_requests_total",
    "p50 latency": r"histogram_quantile\(0\.5, sum by \(le\) \(rate\(digits_http_request_duration_seconds_bucket",
    "p95 latency": r"histogram_quantile\(0\.95, sum by \(le\) \(rate\(digits_http_request_duration_seconds_bucket",
    "p99 latency": r"histogram_quantile\(0\.99, sum by \(le\) \(rate\(digits_http_request_duration_seconds_bucket",
    "inference latency": r"digits_inference_duration_seconds_bucket",
    "queue wait": r"digits_queue_wait_seconds_bucket",
    "batch size distribution": r"digits_batch_size_bucket",
    "queue depth": r"digits_queue_depth",
    "in-flight": r"digits_inflight_requests",
    "error rate by code": r"sum by \(code\) \(rate\(digits_errors_total",
    "predictions by label": r"sum by \(label\) \(increase\(digits_predictions_total",
    "TorchServe mean latency": (
        r"rate\(ts_inference_latency_microseconds\[[^\]]+\]\)\) / sum\(rate\(ts_inference_requests_total"
    ),
    "GPU utilisation": r"GPUUtilization",
    "GPU memory": r"GPUMemoryUsed",
    "model version": r"digits_model_info",
    "request rate by version": r"sum by \(version, outcome\) \(rate\(digits_version_requests_total",
    "p99 by version": r"histogram_quantile\(0\.99, sum by \(le, version\) \(rate\(digits_version_request_duration",
    "error rate by version": r'digits_version_requests_total\{outcome="error"\}',
    "traffic shares": r"digits_traffic_share",
    "shadow agreement": r'digits_shadow_comparisons_total\{result="agree"\}',
    "shadow confidence shift": r"digits_shadow_confidence_sum\{side=\"candidate\"\}",
    "class mix by version": r"sum by \(version, label\) \(increase\(digits_predictions_total",
    "confidence distribution by version": r"sum by \(version, le\) \(increase\(digits_version_confidence_bucket",
    "rollout step": r"digits_rollout_step",
    "rollbacks with their reason": r"sum by \(result, reason\) \(.*digits_rollouts_total",
    "drift score by version and statistic": r"max by \(version, statistic\) \(digits_drift_score",
    "confidence: served window": r'digits_drift_window_mean\{statistic="confidence"\}',
    "confidence: training baseline": r'digits_drift_baseline_mean\{statistic="confidence"\}',
    "requests by API key": r"sum by \(key_name\) \(rate\(digits_key_requests_total",
    "images by API key": r"sum by \(key_name\) \(rate\(digits_key_images_total",
    "429s by API key and quota": r"sum by \(key_name, quota\) \(rate\(digits_quota_refusals_total",
}


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def data_panels() -> list[dict[str, Any]]:
    return [panel for panel in load_dashboard()["panels"] if panel["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in data_panels() for target in panel["targets"]]


def slo_seconds() -> float:
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "DigitsPredictLatencyAboveSLO":
                match = re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip())
                assert match, rule["expr"]
                return float(match.group(1))
    raise AssertionError("no DigitsPredictLatencyAboveSLO rule")


def test_panels_have_unique_ids_and_fit_the_grid_without_overlap() -> None:
    panels = load_dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= GRID_COLUMNS, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_panel_queries_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (datasource,) = provisioned["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    for panel in data_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"] and target["expr"].strip(), panel["title"]


def test_every_panel_has_a_unit_and_thresholds() -> None:
    for panel in data_panels():
        defaults = panel["fieldConfig"]["defaults"]
        unit = panel["options"]["yAxis"]["unit"] if panel["type"] == "heatmap" else defaults["unit"]
        assert unit, panel["title"]
        if panel["type"] != "heatmap":
            assert defaults["thresholds"]["steps"], panel["title"]


def test_the_p99_panel_draws_the_slo_of_the_alert() -> None:
    slo = slo_seconds()
    (panel,) = [p for p in data_panels() if "SLO" in p["title"]]
    assert any("histogram_quantile(0.99" in target["expr"] for target in panel["targets"])
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["unit"] == "s"
    assert slo in [step["value"] for step in defaults["thresholds"]["steps"]]
    assert defaults["custom"]["thresholdsStyle"]["mode"].startswith("line")


@pytest.mark.parametrize(("what", "pattern"), REQUIRED_QUERIES.items(), ids=list(REQUIRED_QUERIES))
def test_the_dashboard_shows(what: str, pattern: str) -> None:
    assert any(re.search(pattern, expr) for expr in expressions()), f"no panel shows {what}"


def test_the_queries_use_only_gateway_metrics_that_exist() -> None:
    exported = gateway_series_names()
    used = {name for expr in expressions() for name in re.findall(r"\bdigits_[a-z_]+\b", expr)}
    assert used and not used - exported, f"unknown series: {sorted(used - exported)}"


def test_the_dashboard_provider_reads_where_compose_mounts_the_dashboards() -> None:
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "digits.yml").read_text())
    (entry,) = provider["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{entry['options']['path']}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{entry['options']['path']}/{DASHBOARD.name}"
    assert load_dashboard()["uid"] and load_dashboard()["editable"] is False
