"""What the test cluster changes on the host, and how it puts it back: a network namespace of its own, the
kernel settings the kubelet rewrites, the directories it creates outside its work directory, and mounts.

The kubelet sets vm.overcommit_memory, kernel.panic, kernel.panic_on_oops (and, when they differ, the other
tunables below) for the whole host, and creates a few fixed directories; ``HostState`` records them before
the cluster starts and ``restore`` undoes exactly what changed.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# kubelet: pkg/kubelet/cm/container_manager_linux.go, setupKernelTunables
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
KUBELET_DIRECTORIES = (
    "/var/lib/kubelet",
    "/var/lib/dockershim",
    "/var/log/pods",
    "/var/log/containers",
    "/etc/kubernetes",
)
CLONE_NEWNET = 0x40000000


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


@dataclass
class HostState:
    sysctls: dict[str, str] = field(default_factory=dict)
    missing_directories: list[str] = field(default_factory=list)

    @classmethod
    def record(cls) -> HostState:
        return cls(
            {name: _sysctl_path(name).read_text().strip() for name in KUBELET_SYSCTLS},
            [path for path in KUBELET_DIRECTORIES if not os.path.lexists(path)],
        )

    def changed_sysctls(self) -> dict[str, tuple[str, str]]:
        """name -> (before, now) for every recorded setting that differs now."""
        now = {name: _sysctl_path(name).read_text().strip() for name in self.sysctls}
        return {name: (before, now[name]) for name, before in self.sysctls.items() if now[name] != before}

    def restore(self) -> None:
        for name, (before, _) in self.changed_sysctls().items():
            _sysctl_path(name).write_text(before)
        for path in self.missing_directories:
            subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


class NetworkNamespace:
    """A named network namespace with loopback and a veth pair for the node's address, both ends inside (this
    kernel has no dummy devices). Nothing in it routes out: its default route leads only to the pair's
    other end."""

    def __init__(self, name: str, node_ip: str) -> None:
        self.name = name
        self.node_ip = node_ip
        self.path = Path("/run/netns") / name

    def create(self) -> None:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        for command in (
            "ip link set lo up",
            "ip link add node0 type veth peer name node1",
            f"ip addr add {self.node_ip}/24 dev node0",
            "ip link set node1 up",
            "ip link set node0 up",
            "ip route add default dev node0",
        ):
            subprocess.run([*self.enter(), *command.split()], check=True, capture_output=True)

    def enter(self) -> list[str]:
        """The command prefix that runs a command inside. nsenter, not `ip netns exec`: that one remounts
        /sys, and dockerd then finds no devices cgroup."""
        return ["nsenter", f"--net={self.path}"]

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` on a thread of this process that has joined the namespace (setns changes the
        calling thread only), so its sockets live in there."""
        result: list[T] = []
        errors: list[BaseException] = []

        def joined() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                with self.path.open() as handle:
                    if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns {self.path}")
                result.append(function())
            except BaseException as error:
                errors.append(error)

        thread = threading.Thread(target=joined, name=f"netns-{self.name}")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return result[0]

    def remove(self) -> None:
        if self.path.exists():
            subprocess.run(["ip", "netns", "delete", self.name], check=False, capture_output=True)


def unmount_below(directory: Path) -> None:
    """Lazily unmount whatever is still mounted under ``directory`` (pod volumes, overlay layers), deepest
    first, so that it can be removed."""
    prefix = str(directory.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted({m for m in mounts if m.startswith(prefix)}, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
