"""CPU used by the benchmark's server processes (started with :class:`ops.local_servers.ServerProcess`)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc; processes that vanish meanwhile are skipped)."""
    found = [pid]
    for current in found:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                with contextlib.suppress(OSError):
                    found += [int(child) for child in Path(f"/proc/{current}/task/{task}/children").read_text().split()]
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            # Fields after the command name, which may itself contain spaces: utime and stime are 14 and 15.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


class CpuMeter:
    """CPU used by a process tree between ``start()`` and ``stop()``, in cores (1.0 = one core busy)."""

    def __init__(self, root_pids: Sequence[int]) -> None:
        self._roots = list(root_pids)
        self._pids: list[int] = []
        self._cpu = 0.0
        self._wall = 0.0

    def _tree(self) -> list[int]:
        return [pid for root in self._roots for pid in process_tree(root)]

    def start(self) -> None:
        self._pids = self._tree()
        self._cpu = cpu_seconds(self._pids)
        self._wall = time.monotonic()

    def stop(self) -> float:
        elapsed = time.monotonic() - self._wall
        # Processes that started meanwhile count from zero; ones that ended are gone from both sums.
        pids = sorted(set(self._pids) | set(self._tree()))
        used = cpu_seconds(pids) - self._cpu
        return max(used, 0.0) / elapsed if elapsed > 0 else 0.0
