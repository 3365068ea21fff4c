"""The gateway containers' own logs, kept for the test artifacts: the kubelet removes a deleted pod's container
with its log, so each container's log is followed (``docker logs -t -f``) into a file from the moment it exists.
With them, a failed request can be set against the pods' SIGTERM, drain and start times."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

CONTAINER_PREFIX = "k8s_gateway_"  # dockershim names a pod's container k8s_<container>_<pod>_<namespace>_...


class PodLogFollower:
    def __init__(self, docker_socket: Path, directory: Path) -> None:
        self._docker = ["docker", "-H", f"unix://{docker_socket}"]
        self._directory = directory
        self._followers: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow_new_containers, name="pod-logs", daemon=True)

    def start(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def _follow_new_containers(self) -> None:
        while not self._stop.wait(1):
            try:
                listed = subprocess.run([*self._docker, "ps", "--format", "{{.ID}} {{.Names}}"],
                                        capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
            except subprocess.TimeoutExpired:
                continue
            for line in listed.stdout.splitlines():
                container, _, name = line.partition(" ")
                if name.startswith(CONTAINER_PREFIX) and container not in self._followers:
                    with (self._directory / f"{name.removeprefix(CONTAINER_PREFIX)}.log").open("wb") as log:
                        self._followers[container] = subprocess.Popen(
                            [*self._docker, "logs", "-t", "-f", container], stdout=log, stderr=subprocess.STDOUT
                        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(60)
        for follower in self._followers.values():
            if follower.poll() is None:
                follower.terminate()
            follower.wait(10)
