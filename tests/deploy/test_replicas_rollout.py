"""Two gateway replicas behind the load balancer, sharing the compose volumes of the model repository and the
serving state: a rollout started through the load balancer, under load, is promoted with 0 failed requests, and
both replicas then serve the new version. The figures go to test-artifacts/deploy/replicas-rollout.json.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from model.mnist import Split
from tests.deploy.stack import ARTIFACTS, COMPOSE_FILE, ROOT, ComposeStack
from tests.lifecycle.helpers import Keys, Load, bearer, make_keys, pixel_bodies, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

REPLICAS = 2
GATEWAY = "gateway-cpu"
API_KEYS = ROOT / "deploy" / "compose" / "api-keys.yml"
STABLE, CANDIDATE = "2.1.0", "2.0.0"  # the stack starts with the repository's newest version
# As tests/lifecycle/test_rollout.py: short steps, and room for the latency gate on this shared machine.
FAST_STEPS = {
    "DIGITS_ROLLOUT_STEP_MIN_REQUESTS": "60",
    "DIGITS_ROLLOUT_STEP_MIN_SECONDS": "1",
    "DIGITS_ROLLOUT_GATE_MIN_SAMPLES": "30",
    "DIGITS_ROLLOUT_MAX_P99_RATIO": "3",
}
SERVED_BY = re.compile(r" gateways/(?P<server>\S+) status=(?P<status>-?\d+) ")
# Asks the gateway inside a replica's container (the image has Python, no curl): method, path, key, JSON body.
ASK_REPLICA = """
import sys, urllib.request
method, path, key, body = sys.argv[1:5]
request = urllib.request.Request("http://127.0.0.1:8000" + path, data=body.encode() or None, method=method,
                                 headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
with urllib.request.urlopen(request, timeout=30) as response:
    print(response.read().decode())
"""


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keys, Path]:
    return make_keys(tmp_path_factory.mktemp("replicas") / "keys.txt")


@pytest.fixture(scope="module")
def stack(keys_file: tuple[Keys, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    fast_steps = tmp_path_factory.mktemp("replicas") / "fast-steps.yml"
    fast_steps.write_text(json.dumps({"services": {GATEWAY: {"environment": FAST_STEPS}}}))  # JSON is YAML
    stack = ComposeStack(
        "digits-test-replicas",
        [COMPOSE_FILE, API_KEYS, fast_steps],
        profiles=["cpu"],
        # One worker per replica: the replicas, the load and the test share this machine's cores.
        settings={"DIGITS_WORKERS": "1", "DIGITS_API_KEYS_HOST_FILE": str(keys_file[1])},
    )
    with stack.scaled(GATEWAY, REPLICAS) as running:
        yield running


def ask_replica(container: str, method: str, path: str, key: str, body: object = None) -> Any:
    result = subprocess.run(
        ["docker", "exec", container, "python", "-c", ASK_REPLICA, method, path, key,
         "" if body is None else json.dumps(body)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, f"{container} {method} {path}: {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def rollout_through(url: str, keys: Keys) -> dict[str, Any]:
    answer = httpx.get(f"{url}/v1/rollout", headers=bearer(keys.admin), timeout=30)
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    return report


def test_a_rollout_through_the_load_balancer_converges_both_replicas_with_no_failed_request(
    stack: ComposeStack, keys_file: tuple[Keys, Path], labelled_digits: Split
) -> None:
    keys = keys_file[0]
    replicas = stack.containers(GATEWAY)
    assert len(replicas) == REPLICAS
    logged_before = len(SERVED_BY.findall(stack.logs("loadbalancer")))
    started = time.monotonic()
    with Load(stack.url, pixel_bodies(labelled_digits.images), headers=bearer(keys.client)) as load:
        answer = httpx.post(f"{stack.url}/v1/rollout/start", headers=bearer(keys.admin), timeout=120,
                            json={"candidate": CANDIDATE, "steps": ["shadow", "50", "100"]})  # fmt: skip
        assert answer.status_code == 202, answer.text

        def ended() -> bool:
            rollout = rollout_through(stack.url, keys)["rollout"]
            return rollout is not None and rollout["status"] != "running"

        wait_for(ended, timeout=240, what="the rollout to end")
        promoted_after = time.monotonic() - started
        report = rollout_through(stack.url, keys)
        assert report["rollout"]["status"] == "promoted", report["rollout"]
        promoted_at = time.monotonic()
        time.sleep(3)  # the replicas converge within a poll (1 s)
        # Each replica, asked in its own container, under the same load.
        converged = {container: ask_replica(container, "GET", "/v1/rollout", keys.admin) for container in replicas}
        answered = {container: _versions_answering(container, keys, labelled_digits) for container in replicas}
        # A manual rollback through the load balancer, timed by the answers: the previous version is still loaded.
        back = httpx.post(f"{stack.url}/v1/rollout/rollback", headers=bearer(keys.admin), timeout=60)
        assert back.status_code == 200, back.text
        rolled_back_at = time.monotonic()
        time.sleep(4)
    served_by = [server for server, _ in SERVED_BY.findall(stack.logs("loadbalancer"))[logged_before:]]
    promoted_answers = [a.version for a in load.answers if promoted_at + 2 < a.sent and a.received < rolled_back_at]
    last_new = max(a.received for a in load.answers if a.version == CANDIDATE)
    after_rollback = [a.version for a in load.answers if a.sent > rolled_back_at + 2]
    figures = {
        "requests": len(load.answers),
        "failed": len(load.failures()),
        "answered by": {version: sum(a.version == version for a in load.answers) for version in (STABLE, CANDIDATE)},
        "requests per replica": {server: served_by.count(server) for server in sorted(set(served_by))},
        "seconds from start to promoted": round(promoted_after, 1),
        "seconds from the rollback to the last answer of the rolled-back version": round(last_new - rolled_back_at, 2),
        "each replica's policy after the promotion": {c[:12]: view["policy"] for c, view in converged.items()},
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "replicas-rollout.json").write_text(json.dumps(figures, indent=2) + "\n")
    print("replicas-rollout", figures)

    assert not load.failures(), load.failures()[:5]
    assert len(set(served_by)) == REPLICAS, f"the load balancer did not spread the load: {figures}"
    assert promoted_answers and set(promoted_answers) == {CANDIDATE}, "after the promotion only the new version answers"
    for container, view in converged.items():
        assert view["policy"] == {"stable": CANDIDATE, "candidate": None, "weight": 0.0, "shadow": 0.0}, container
        assert view["rollout"]["status"] == "promoted" and view["rollout"]["candidate"] == CANDIDATE, container
    assert answered == {container: {CANDIDATE} for container in replicas}
    assert after_rollback and set(after_rollback) == {STABLE}, "two seconds after the rollback only the previous one"


def _versions_answering(container: str, keys: Keys, digits: Split) -> set[str]:
    """The versions that answer five predictions sent to the gateway in ``container``."""
    bodies = [{"instances": [{"pixels": image.tolist()}], "preprocess": "none"} for image in digits.images[:5]]
    return {ask_replica(container, "POST", "/v1/predict", keys.client, body)["model"]["version"] for body in bodies}
