"""Scale-out on one host: three gateway replicas behind HAProxy, under Locust load, restarted one by one,
one killed with SIGKILL, then all stopped. The figures go to test-artifacts/deploy/ (README "Deploy").
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.deploy.load import LoadResult, LocustLoad
from tests.deploy.stack import ARTIFACTS, COMPOSE_FILE, ComposeStack, inspect

pytestmark = pytest.mark.docker

REPLICAS = 3
GATEWAY = "gateway-cpu"
# HAProxy's log line of one request (deploy/loadbalancer/haproxy.cfg, log-format).
REQUEST_LOG = re.compile(
    r" gateways/(?P<server>\S+) status=(?P<status>-?\d+) retries=(?P<retries>\+?\d+) term=(?P<term>\S+)"
)


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    # One worker per replica: three replicas already share this machine's cores.
    stack = ComposeStack("digits-test-scale", [COMPOSE_FILE], profiles=["cpu"], settings={"DIGITS_WORKERS": "1"})
    with stack.scaled(GATEWAY, REPLICAS) as running:
        yield running


def record(name: str, figures: dict[str, object]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(name, figures)


def test_restarting_the_replicas_one_by_one_fails_no_request(stack: ComposeStack) -> None:
    started = time.monotonic()
    with LocustLoad(stack.url, ARTIFACTS / "rolling-restart") as load:
        for container in stack.containers(GATEWAY):
            subprocess.run(["docker", "restart", "--time", "40", container], check=True, capture_output=True)
            _wait_container_healthy(container)
            stack.wait_balanced(REPLICAS)
        result = load.stop()
    record("rolling-restart", {**_figures(result), "seconds": round(time.monotonic() - started)})
    assert result.requests > 100, result.describe()
    assert result.failures == 0, result.describe()


def test_a_replica_killed_with_sigkill_is_routed_around(stack: ComposeStack) -> None:
    victim = stack.containers(GATEWAY)[0]
    logged_before = len(_requests(stack))
    with LocustLoad(stack.url, ARTIFACTS / "sigkill") as load:
        time.sleep(3)
        subprocess.run(["docker", "kill", "--signal", "KILL", victim], check=True, capture_output=True)
        # Down by its health check, or out of the pool once Docker's DNS no longer resolves it.
        down_seen = _wait_for(lambda: list(stack.server_states().values()).count("UP") < REPLICAS, timeout=15)
        before = _served(stack)
        time.sleep(5)  # the survivors carry the load
        served_meanwhile = _served(stack) - before
        result = load.stop()
    retried = sum(1 for entry in _requests(stack)[logged_before:] if entry["retries"].startswith("+"))
    record("sigkill", {**_figures(result), "lost": result.failures, "sent again to another replica": retried,
                       "served by the survivors in 5 s": served_meanwhile})  # fmt: skip
    assert down_seen, "the load balancer never marked the killed replica down"
    assert served_meanwhile > 20, "the survivors served (almost) nothing while one replica was down"
    # At most the requests in flight on the killed replica can be lost: one per Locust user.
    assert result.failures <= 8, result.describe()
    # Docker's restart policy brings the killed replica back, and the load balancer takes it in again.
    _restart_if_exited(victim)
    _wait_container_healthy(victim)
    stack.wait_balanced(REPLICAS)


def test_stopping_the_gateway_under_load_fails_no_accepted_request(stack: ComposeStack) -> None:
    """Every request a replica accepted is answered (drain on SIGTERM); later ones get HAProxy's 503."""
    logged_before = len(_requests(stack))
    with LocustLoad(stack.url, ARTIFACTS / "stop") as load:
        time.sleep(3)
        stack.compose("stop", GATEWAY)
        time.sleep(2)
        result = load.stop()
    requests = _requests(stack)[logged_before:]
    # The second letter of HAProxy's termination state is how far the request got: R, Q or C (still
    # waiting for a connection to a replica) means no replica ever received it.
    accepted = [entry for entry in requests if entry["term"][1] not in "RQC"]
    failed = [entry for entry in accepted if entry["status"] != "200"]
    refused = [entry for entry in requests if entry["term"][1] in "RQC"]
    record("stop", {**_figures(result), "accepted by a replica": len(accepted), "accepted and failed": len(failed),
                    "refused (no replica listening)": len(refused)})  # fmt: skip
    assert accepted and refused, "the run did not span the stop"
    assert failed == [], failed[:10]
    # What Locust saw fail never reached a replica: the load balancer's own 503 (no gateway error body), or a
    # client connection the load balancer closed. No wrong answer, no gateway error.
    assert all(
        "HTTP 503: no error body" in message or "connection" in message for message in result.failure_messages
    ), result.describe()


def _figures(result: LoadResult) -> dict[str, object]:
    return {"requests": result.requests, "failures": result.failures, "failure messages": result.failure_messages}


def _requests(stack: ComposeStack) -> list[dict[str, str]]:
    return [match.groupdict() for match in REQUEST_LOG.finditer(stack.logs("loadbalancer"))]


def _served(stack: ComposeStack) -> int:
    return sum(1 for entry in _requests(stack) if entry["status"] == "200")


def _wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def _restart_if_exited(container: str) -> None:
    time.sleep(2)
    if not inspect(container)["State"]["Running"]:  # type: ignore[index]
        subprocess.run(["docker", "start", container], check=True, capture_output=True)


def _wait_container_healthy(container: str, timeout: float = 120) -> None:
    if not _wait_for(lambda: inspect(container)["State"].get("Health", {}).get("Status") == "healthy", timeout):  # type: ignore[attr-defined]
        raise TimeoutError(f"{container} not healthy after {timeout} s")
