"""deploy/k8s's cpu overlay on a real Kubernetes v1.20 cluster (tests/kubernetes/cluster.py): the pods pass
their probes as uid 10001 with the manifest's security context, the Service answers right, and a rolling
restart, a deleted pod, evictions and an image update lose no request. Load: Locust's answer-checking users
(loadtest/locustfile.py) inside the cluster's network namespace, through the Service. The figures go to
test-artifacts/kubernetes/ (docs/kubernetes.md).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from loadtest.checks import prediction_problem
from loadtest.samples import load_samples
from tests.deploy.load import LoadResult, LocustLoad
from tests.kubernetes.cluster import Cluster
from tests.kubernetes.gateway import (
    ARTIFACTS,
    DEPLOYMENT,
    NAMESPACE,
    SELECTOR,
    UPDATED_IMAGE,
    deployment,
    evict,
    pods,
    post,
    service_url,
    wait_disruptions_allowed,
    wait_rolled_out,
)

pytestmark = [pytest.mark.kubernetes, pytest.mark.timeout(900)]

UID = 10001


def record(name: str, figures: dict[str, object]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(name, figures)


def all_pod_names(cluster: Cluster) -> set[str]:
    """Every gateway pod, terminating ones included."""
    listed = cluster.kubectl_json("-n", NAMESPACE, "get", "pods", "-l", SELECTOR)
    items: list[dict[str, Any]] = listed["items"]  # type: ignore[assignment]
    return {pod["metadata"]["name"] for pod in items}


def wait_gone(cluster: Cluster, names: set[str], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while names & all_pod_names(cluster):
        assert time.monotonic() < deadline, f"still there: {names & all_pod_names(cluster)}"
        time.sleep(1)


def settled(cluster: Cluster) -> list[str]:
    """Wait for the Deployment's pods all ready and no other pod left; their names."""
    wait_rolled_out(cluster)
    names = {pod["metadata"]["name"] for pod in pods(cluster)}
    wait_gone(cluster, all_pod_names(cluster) - names)
    wait_disruptions_allowed(cluster, 1)
    return sorted(names)


def under_load(cluster: Cluster, name: str) -> LocustLoad:
    # 4 users: as many as one 2-CPU node running three gateway pods serves without shedding load (503 queue_full)
    return LocustLoad(service_url(cluster), ARTIFACTS / name, users=4, wrapper=cluster.netns.enter())


def container_id(pod: dict[str, Any]) -> str:
    (status,) = pod["status"]["containerStatuses"]
    found: str = status["containerID"].removeprefix("docker://")
    return found


def container_process(cluster: Cluster, pod: dict[str, Any]) -> int:
    return int(cluster.docker("inspect", "-f", "{{.State.Pid}}", container_id(pod)).strip())


def process_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def process_tree(pid: int) -> list[int]:
    children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    return [pid, *(p for child in children for p in process_tree(child))]


def test_pods_are_ready_through_their_probes_as_uid_10001_with_the_manifest_security_context(
    cluster: Cluster,
) -> None:
    settled(cluster)
    ready = pods(cluster)
    assert len(ready) == deployment(cluster)["spec"]["replicas"] == 2
    for pod in ready:
        conditions = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
        assert conditions["Ready"] == "True", pod["status"]
        (container,) = pod["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        # What the kernel says of every process of the container (the supervisor and its workers).
        tree = process_tree(container_process(cluster, pod))
        assert len(tree) >= 3, tree  # DIGITS_WORKERS=2
        for pid in tree:
            status = process_status(pid)
            assert status["Uid"].split() == [str(UID)] * 4, status
            assert status["Gid"].split() == [str(UID)] * 4, status
            assert status["NoNewPrivs"] == "1"  # allowPrivilegeEscalation: false
            assert status["Seccomp"] == "2"  # seccompProfile: RuntimeDefault (filter mode)
            assert int(status["CapEff"], 16) == 0  # capabilities: drop ALL
        inspected = json.loads(cluster.docker("inspect", container_id(pod)))[0]
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert any(m["Destination"] == "/tmp" for m in inspected["Mounts"]), inspected["Mounts"]


def test_png_and_pixel_predictions_through_the_service_get_the_right_labels(cluster: Cluster) -> None:
    url = f"{service_url(cluster)}/v1/predict"
    samples = load_samples()
    for sample in samples:
        png = post(cluster, url, params={"preprocess": "auto"}, files={"file": (sample.name, sample.png, "image/png")})
        assert prediction_problem(png.status_code, png.content, [sample.label]) is None, (sample.name, png.text)
        pixels = post(cluster, url, json={"instances": [{"pixels": sample.pixels}], "preprocess": "none"})
        assert prediction_problem(pixels.status_code, pixels.content, [sample.label]) is None, pixels.text
    assert len(samples) >= 10


def assert_nothing_failed(name: str, result: LoadResult, started: float, **figures: object) -> None:
    record(name, {"requests": result.requests, "failures": result.failures, "failure_messages":
                  result.failure_messages, "seconds": round(time.monotonic() - started, 1), **figures})  # fmt: skip
    assert result.requests > 0
    assert result.failures == 0, result.describe()


def test_rollout_restart_under_load_fails_no_request(cluster: Cluster) -> None:
    before = set(settled(cluster))
    started = time.monotonic()
    with under_load(cluster, "rollout-restart") as load:
        cluster.kubectl("-n", NAMESPACE, "rollout", "restart", f"deployment/{DEPLOYMENT}")
        wait_rolled_out(cluster)
        wait_gone(cluster, before)
        result = load.stop()
    after = {pod["metadata"]["name"] for pod in pods(cluster)}
    assert not after & before and len(after) == 2, (before, after)
    assert_nothing_failed("rollout-restart", result, started, replaced_pods=len(before))


def test_deleting_a_serving_pod_under_load_fails_no_request(cluster: Cluster) -> None:
    victim, survivor = settled(cluster)
    started = time.monotonic()
    with under_load(cluster, "delete-pod") as load:
        cluster.kubectl("-n", NAMESPACE, "delete", "pod", victim, timeout=120)  # waits out the graceful stop
        wait_rolled_out(cluster)
        result = load.stop()
    names = {pod["metadata"]["name"] for pod in pods(cluster)}
    assert victim not in names and survivor in names and len(names) == 2, names
    assert_nothing_failed("delete-pod", result, started, deleted=victim)


def test_the_disruption_budget_blocks_a_second_voluntary_eviction(cluster: Cluster) -> None:
    first, second = settled(cluster)
    evicted = evict(cluster, first)
    assert evicted.status == 201, evicted.message
    blocked = evict(cluster, second)
    assert blocked.status == 429, blocked.message
    assert "disruption budget" in blocked.message
    wait_gone(cluster, {first})
    assert second in settled(cluster)


def test_an_image_update_to_a_new_tag_rolls_out_and_serves(cluster: Cluster) -> None:
    before = set(settled(cluster))
    old_image_ids = {pod["status"]["containerStatuses"][0]["imageID"] for pod in pods(cluster)}
    cluster.kubectl("-n", NAMESPACE, "set", "image", f"deployment/{DEPLOYMENT}", f"gateway={UPDATED_IMAGE}")
    wait_rolled_out(cluster)
    wait_gone(cluster, before)
    updated = pods(cluster)
    assert len(updated) == 2
    for pod in updated:
        assert pod["spec"]["containers"][0]["image"] == UPDATED_IMAGE
        assert pod["status"]["containerStatuses"][0]["image"] == UPDATED_IMAGE
        assert pod["status"]["containerStatuses"][0]["imageID"] not in old_image_ids
    sample = load_samples()[0]
    answer = post(cluster, f"{service_url(cluster)}/v1/predict", files={"file": (sample.name, sample.png, "image/png")})
    assert prediction_problem(answer.status_code, answer.content, [sample.label]) is None, answer.text


def test_the_autoscaler_is_accepted_but_has_no_metrics_to_act_on(cluster: Cluster) -> None:
    """What runs of the HPA here: the object (autoscaling/v2beta2 on v1.20) and its controller. What cannot:
    the custom metric, since no metrics API (prometheus-adapter, metrics-server) can be installed here."""
    deadline = time.monotonic() + 90
    while True:
        hpa = cluster.kubectl_json("-n", NAMESPACE, "get", "horizontalpodautoscaler.v2beta2.autoscaling", DEPLOYMENT)
        status: dict[str, Any] = hpa.get("status", {})  # type: ignore[assignment]
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        if "ScalingActive" in conditions or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert conditions["ScalingActive"]["status"] == "False", conditions
    assert conditions["ScalingActive"]["reason"] == "FailedGetPodsMetric", conditions
    assert deployment(cluster)["spec"]["replicas"] == 2
