"""A one-node Kubernetes v1.20 cluster of real processes, inside a network namespace of its own.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a dockerd of its own (runc behind
runc_wrap.py), the kubelet (dockershim) and kube-proxy (iptables), all started here as children with their
logs and state in one work directory. ``stop`` takes everything down and puts the host back (host.py); it is
safe to call twice, and the fixture also calls it at exit and on SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.kubernetes.host import HostState, NetworkNamespace, unmount_below

HERE = Path(__file__).resolve().parent
NODE = "digits-k8s-node"
NODE_IP = "10.201.0.2"
SERVICE_RANGE = "10.96.0.0/16"
PAUSE_IMAGE = "digits-k8s/pause:3.2"
API = "https://127.0.0.1:6443"


class ClusterError(RuntimeError):
    pass


class Cluster:
    def __init__(self, binaries: Path, work: Path, logs: Path) -> None:
        """``logs``: where ``stop`` leaves every component's log (the work directory goes)."""
        self.binaries = binaries
        self.work = work
        self.logs = logs
        self.netns = NetworkNamespace(f"digits-k8s-{os.getpid()}", NODE_IP)
        self.kubeconfig = work / "kubeconfig"
        self.docker_socket = work / "docker.sock"
        self._host: HostState | None = None
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._stopped = False

    # -- use ---------------------------------------------------------------------------------------------
    def kubectl(
        self, *arguments: str, stdin: str | None = None, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        """kubectl v1.20 (built with the cluster) inside the namespace."""
        command = [*self.netns.enter(), str(self.binaries / "kubectl"), f"--kubeconfig={self.kubeconfig}", *arguments]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(arguments)}: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def kubectl_json(self, *arguments: str) -> dict[str, object]:
        value: dict[str, object] = json.loads(self.kubectl(*arguments, "-o", "json").stdout)
        return value

    def docker(self, *arguments: str, stdin: int | None = None, timeout: float = 300) -> str:
        """The docker CLI against the node's engine (its socket is a path: no need to enter the namespace)."""
        result = subprocess.run(["docker", "-H", f"unix://{self.docker_socket}", *arguments], stdin=stdin,
                                capture_output=True, text=True, timeout=timeout)  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(f"docker {' '.join(arguments)}: {result.stderr.strip()}")
        return result.stdout

    # -- start -------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._host = HostState.record()
        self.work.mkdir(parents=True, exist_ok=True)
        self.netns.create()
        self._write_credentials()
        self._start("etcd", self._etcd())
        self._start("kube-apiserver", self._apiserver())
        self._start("dockerd", self._dockerd())
        self._wait(
            "the node's dockerd", lambda: self._succeeds(["docker", "-H", f"unix://{self.docker_socket}", "info"])
        )
        subprocess.run([*self.netns.enter(), "ip", "route", "add", SERVICE_RANGE, "dev", "docker0"], check=True)
        self._import_pause_image()
        self._wait(
            "kube-apiserver /readyz", lambda: self.kubectl("get", "--raw", "/readyz", check=False).returncode == 0
        )
        self._start("kube-controller-manager", self._controller_manager())
        self._start("kube-scheduler", self._scheduler())
        self._start("kubelet", self._kubelet())
        self._start("kube-proxy", self._proxy())
        self._wait("the node registered", lambda: self.kubectl("get", "node", NODE, check=False).returncode == 0)
        self.kubectl("wait", "--for=condition=Ready", f"node/{NODE}", "--timeout=120s")

    def load_image(self, image: str) -> None:
        """Copy ``image`` from the host's Docker engine (`make images`) into the node's."""
        saved = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert saved.stdout is not None
        try:
            self.docker("load", "-q", stdin=saved.stdout.fileno(), timeout=600)
        finally:
            saved.stdout.close()
            if saved.wait(60) != 0:
                raise ClusterError(
                    f"docker save {image} on the host: {saved.stderr.read().decode() if saved.stderr else ''}"
                )

    def derive_image(self, base: str, tag: str) -> None:
        """A new image (its own ID) on top of ``base`` in the node's engine: what an image update rolls out."""
        dockerfile = f'FROM {base}\nLABEL org.opencontainers.image.description="{tag}: the image update test\'s"\n'
        result = subprocess.run(["docker", "-H", f"unix://{self.docker_socket}", "build", "-q", "-t", tag, "-"],
                                input=dockerfile, capture_output=True, text=True, timeout=300,
                                env={**os.environ, "DOCKER_BUILDKIT": "0"})  # fmt: skip
        if result.returncode != 0:
            raise ClusterError(f"docker build {tag}: {result.stderr.strip()}")

    def _write_credentials(self) -> None:
        self._token = secrets.token_hex(16)
        (self.work / "tokens.csv").write_text(f"{self._token},admin,admin,system:masters\n")
        key, public = self.work / "sa.key", self.work / "sa.pub"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(public)], check=True, capture_output=True
        )
        self.kubeconfig.write_text(
            json.dumps({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "test", "cluster": {"server": API, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "admin", "user": {"token": self._token}}],
                "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                "current-context": "test",
            })
        )  # fmt: skip
        (self.work / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        (self.work / "daemon.json").write_text("{}\n")

    def _etcd(self) -> list[str]:
        return ["etcd", "--name=default", f"--data-dir={self.work / 'etcd'}",
                "--listen-client-urls=http://127.0.0.1:2379", "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380", "--initial-advertise-peer-urls=http://127.0.0.1:2380",
                "--initial-cluster=default=http://127.0.0.1:2380"]  # fmt: skip

    def _apiserver(self) -> list[str]:
        return [str(self.binaries / "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", "--secure-port=6443",
                f"--cert-dir={self.work / 'apiserver'}", f"--token-auth-file={self.work / 'tokens.csv'}",
                "--authorization-mode=AlwaysAllow", f"--service-cluster-ip-range={SERVICE_RANGE}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={self.work / 'sa.pub'}",
                f"--service-account-signing-key-file={self.work / 'sa.key'}"]  # fmt: skip

    def _controller_manager(self) -> list[str]:
        return [str(self.binaries / "kube-controller-manager"), f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false", "--port=0", f"--cert-dir={self.work / 'controller-manager'}",
                f"--service-account-private-key-file={self.work / 'sa.key'}"]  # fmt: skip

    def _scheduler(self) -> list[str]:
        return [str(self.binaries / "kube-scheduler"), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
                "--port=0", f"--cert-dir={self.work / 'scheduler'}"]  # fmt: skip

    def _dockerd(self) -> list[str]:
        return ["dockerd", f"--config-file={self.work / 'daemon.json'}", f"--data-root={self.work / 'docker'}",
                f"--exec-root={self.work / 'dx'}", f"--pidfile={self.work / 'docker.pid'}",
                f"--host=unix://{self.docker_socket}", f"--add-runtime=wrap={HERE / 'runc_wrap.py'}",
                "--default-runtime=wrap", "--storage-driver=overlay2"]  # fmt: skip

    def _kubelet(self) -> list[str]:
        return [str(self.binaries / "kubelet"), f"--kubeconfig={self.kubeconfig}", f"--hostname-override={NODE}",
                f"--node-ip={NODE_IP}", "--container-runtime=docker",
                f"--docker-endpoint=unix://{self.docker_socket}",
                f"--container-runtime-endpoint=unix://{self.work / 'dockershim.sock'}",
                f"--experimental-dockershim-root-directory={self.work / 'dockershim'}",
                f"--pod-infra-container-image={PAUSE_IMAGE}", f"--root-dir={self.work / 'kubelet'}",
                f"--cert-dir={self.work / 'kubelet-pki'}", f"--volume-plugin-dir={self.work / 'volume-plugins'}",
                f"--resolv-conf={self.work / 'resolv.conf'}", "--fail-swap-on=false", "--cgroup-driver=cgroupfs",
                "--cgroups-per-qos=false", "--enforce-node-allocatable=", "--eviction-hard=", "--read-only-port=0",
                "--image-gc-high-threshold=100", "--image-gc-low-threshold=99"]  # fmt: skip

    def _proxy(self) -> list[str]:
        return [str(self.binaries / "kube-proxy"), f"--kubeconfig={self.kubeconfig}", f"--hostname-override={NODE}",
                "--proxy-mode=iptables", "--conntrack-max-per-core=0", "--conntrack-tcp-timeout-established=0",
                "--conntrack-tcp-timeout-close-wait=0"]  # fmt: skip

    def _import_pause_image(self) -> None:
        """The pod sandbox image, from the pause binary compiled from Kubernetes' C source with the build."""
        archive = subprocess.Popen(["tar", "-C", str(self.binaries), "-c", "pause"], stdout=subprocess.PIPE)
        assert archive.stdout is not None
        self.docker("import", "-c", 'ENTRYPOINT ["/pause"]', "-", PAUSE_IMAGE, stdin=archive.stdout.fileno())
        archive.stdout.close()
        archive.wait(30)

    def _start(self, name: str, command: Sequence[str]) -> None:
        log = (self.work / f"{name}.log").open("wb")
        process = subprocess.Popen([*self.netns.enter(), *command], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        log.close()
        self._processes.append((name, process))

    def _succeeds(self, command: list[str]) -> bool:
        return subprocess.run(command, capture_output=True, timeout=60).returncode == 0

    def _wait(self, what: str, ready: Callable[[], bool], timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            for name, process in self._processes:
                if process.poll() is not None:
                    raise ClusterError(f"{name} exited ({process.returncode}) waiting for {what}:\n{self.log(name)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"{what}: not within {timeout_s:.0f} s")
            time.sleep(0.5)

    def log(self, name: str, tail: int = 3000) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.is_file() else ""

    # -- stop --------------------------------------------------------------------------------------------
    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        running = dict(self._processes)
        if "kube-apiserver" in running and "kubelet" in running:
            # Pods first, through the kubelet (it unmounts their volumes), while everything still runs.
            self.kubectl(
                "delete", "namespace", "digits", "--ignore-not-found", "--timeout=90s", check=False, timeout=120
            )
        if "dockerd" in running:
            try:
                ids = self.docker("ps", "-aq", timeout=60).split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=120)
            except (ClusterError, subprocess.TimeoutExpired):
                pass
        for name, process in reversed(self._processes):
            _terminate(process, 30 if name == "dockerd" else 10)
        self._kill_leftovers()
        self.logs.mkdir(parents=True, exist_ok=True)
        for log in self.work.glob("*.log"):
            shutil.copy(log, self.logs / log.name)
        unmount_below(self.work)
        shutil.rmtree(self.work, ignore_errors=True)
        self.netns.remove()
        if self._host is not None:
            self._host.restore()

    def _kill_leftovers(self) -> None:
        """containerd and its shims, started by our dockerd: every process whose command line names the work
        directory."""
        marker = str(self.work).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue


def _terminate(process: subprocess.Popen[bytes], grace_s: float) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
