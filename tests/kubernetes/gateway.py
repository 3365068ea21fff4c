"""The digits gateway on the test cluster: applied from deploy/k8s (through tests/kubernetes/overlay), its
pods, its Service, and the requests and evictions the tests send, all from inside the cluster's namespace."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.deploy.stack import ROOT
from tests.kubernetes.cluster import HERE, Cluster, ClusterError

NAMESPACE = "digits"
DEPLOYMENT = "digits-gateway"
SELECTOR = "app.kubernetes.io/name=digits-gateway"
ROLLOUT_TIMEOUT = "600s"
ARTIFACTS = ROOT / "test-artifacts" / "kubernetes"
VERSION = next(
    line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text().splitlines() if line.startswith("version = ")
)
GATEWAY_IMAGE = f"digits-gateway:{VERSION}"  # `make images`
UPDATED_IMAGE = f"digits-gateway:{VERSION}-update"  # built on GATEWAY_IMAGE in the node: the image update test's


def render_overlay() -> str:
    """The test overlay, rendered by the modern kubectl of the test extra (kubectl v1.20's kustomize is too
    old for deploy/k8s): applied with kubectl v1.20 from the text."""
    kubectl = Path(sys.executable).parent / "kubectl"
    command = [str(kubectl) if kubectl.is_file() else "kubectl", "kustomize", str(HERE / "overlay")]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout


def deploy(cluster: Cluster) -> None:
    cluster.kubectl("apply", "-f", str(HERE / "servicemonitor-crd.yaml"))
    cluster.kubectl("wait", "--for=condition=Established", "crd/servicemonitors.monitoring.coreos.com")
    manifests = render_overlay()
    for attempt in range(5):
        # v1.20's API server can drop the first requests for a kind its CRD has just made (unexpected EOF).
        result = cluster.kubectl("apply", "-f", "-", stdin=manifests, check=attempt == 4)
        if result.returncode == 0:
            break
        time.sleep(2)
    wait_rolled_out(cluster)


def wait_rolled_out(cluster: Cluster) -> None:
    cluster.kubectl("-n", NAMESPACE, "rollout", "status", f"deployment/{DEPLOYMENT}", f"--timeout={ROLLOUT_TIMEOUT}",
                    timeout=630)  # fmt: skip


def deployment(cluster: Cluster) -> dict[str, Any]:
    return cluster.kubectl_json("-n", NAMESPACE, "get", "deployment", DEPLOYMENT)


def pods(cluster: Cluster) -> list[dict[str, Any]]:
    """The gateway's pods that are not terminating."""
    listed = cluster.kubectl_json("-n", NAMESPACE, "get", "pods", "-l", SELECTOR)
    items: list[dict[str, Any]] = listed["items"]  # type: ignore[assignment]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def service_url(cluster: Cluster) -> str:
    service = cluster.kubectl_json("-n", NAMESPACE, "get", "service", DEPLOYMENT)
    spec: dict[str, Any] = service["spec"]  # type: ignore[assignment]
    return f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}"


def post(cluster: Cluster, url: str, **request: Any) -> httpx.Response:
    """POST from inside the cluster's network namespace."""
    return cluster.netns.call(lambda: httpx.post(url, timeout=30, **request))


def wait_disruptions_allowed(cluster: Cluster, count: int, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        budget = cluster.kubectl_json("-n", NAMESPACE, "get", "poddisruptionbudget", DEPLOYMENT)
        status: dict[str, Any] = budget.get("status", {})  # type: ignore[assignment]
        if status.get("disruptionsAllowed") == count:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"the PodDisruptionBudget's status stayed {status}")
        time.sleep(1)


@dataclass(frozen=True)
class Eviction:
    status: int
    message: str


def evict(cluster: Cluster, pod: str) -> Eviction:
    """A voluntary eviction through the Eviction API (policy/v1beta1 on v1.20), as `kubectl drain` sends."""
    body = {"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": pod, "namespace": NAMESPACE}}
    result = cluster.kubectl("create", "--raw", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction", "-f", "-",
                             stdin=json.dumps(body), check=False)  # fmt: skip
    if result.returncode == 0:
        return Eviction(201, result.stdout)
    code = 429 if "TooManyRequests" in result.stderr or "disruption budget" in result.stderr else 0
    return Eviction(code, result.stderr.strip())
