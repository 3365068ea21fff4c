"""The `kubernetes` tier's cluster: built once (tests/kubernetes/build_binaries.sh, cached outside the
checkout), started once per session with the gateway image loaded and deploy/k8s applied, and always taken
down: by the fixture's finalizer, at interpreter exit, and on SIGTERM."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.kubernetes.cluster import HERE, Cluster
from tests.kubernetes.gateway import ARTIFACTS, GATEWAY_IMAGE, UPDATED_IMAGE, deploy
from tests.kubernetes.pod_logs import PodLogFollower


def _unavailable(message: str) -> None:
    """CI must run this tier: there a missing prerequisite fails; elsewhere it skips."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _binaries() -> Path:
    started = time.monotonic()
    result = subprocess.run([str(HERE / "build_binaries.sh")], capture_output=True, text=True, timeout=3600)
    if result.returncode != 0:
        _unavailable(
            f"building Kubernetes failed (make kubernetes-deps installs what it needs):\n{result.stderr[-3000:]}"
        )
    print(f"Kubernetes binaries ready in {time.monotonic() - started:.1f} s")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        _unavailable("the kubernetes tier runs a kubelet and a dockerd in a network namespace: root only")
    if subprocess.run(["docker", "image", "inspect", GATEWAY_IMAGE], capture_output=True).returncode != 0:
        _unavailable(f"{GATEWAY_IMAGE} is not in the host's Docker engine: run `make images`")
    binaries = _binaries()
    cluster = Cluster(binaries, Path(tempfile.mkdtemp(prefix="digits-k8s-")), ARTIFACTS / "logs")
    shutil.rmtree(ARTIFACTS / "pods", ignore_errors=True)
    # Its `docker logs` processes name the cluster's work directory: Cluster.stop ends them on every path.
    pod_logs = PodLogFollower(cluster.docker_socket, ARTIFACTS / "pods")
    atexit.register(cluster.stop)
    previous = signal.getsignal(signal.SIGTERM)

    def stop_then_exit(signum: int, frame: FrameType | None) -> None:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, stop_then_exit)
    try:
        started = time.monotonic()
        cluster.start()
        pod_logs.start()
        print(f"cluster up (node Ready) in {time.monotonic() - started:.1f} s")
        cluster.load_image(GATEWAY_IMAGE)
        cluster.derive_image(GATEWAY_IMAGE, UPDATED_IMAGE)
        print(f"gateway image loaded at {time.monotonic() - started:.1f} s")
        deploy(cluster)
        print(f"deploy/k8s cpu overlay applied and rolled out at {time.monotonic() - started:.1f} s")
        yield cluster
    finally:
        pod_logs.stop()
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
        atexit.unregister(cluster.stop)
