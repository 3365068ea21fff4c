"""Benchmark server processes: ports, readiness, process trees and the CPU they use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time

from loadtest.processes import CpuMeter, cpu_seconds, process_tree
from ops.local_servers import free_port

BUSY = [sys.executable, "-c", "while True: pass"]


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_a_busy_process_uses_about_a_core_and_an_idle_one_none() -> None:
    busy = subprocess.Popen(BUSY)
    idle = subprocess.Popen(["sleep", "30"])
    try:
        busy_meter, idle_meter = CpuMeter([busy.pid]), CpuMeter([idle.pid])
        busy_meter.start()
        idle_meter.start()
        time.sleep(1.0)
        busy_cores, idle_cores = busy_meter.stop(), idle_meter.stop()
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()
    # A shared machine may not give the busy loop a whole core, but it gets a clear share of one.
    assert 0.2 < busy_cores < 1.2
    assert idle_cores < 0.05


def test_the_tree_holds_children_and_grandchildren_and_counts_their_cpu() -> None:
    parent = subprocess.Popen(["sh", "-c", f"{sys.executable} -c 'while True: pass' & sleep 30"])
    try:
        deadline = time.monotonic() + 10
        while len(process_tree(parent.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        tree = process_tree(parent.pid)
        assert len(tree) >= 3
        before = cpu_seconds(tree)
        time.sleep(0.5)
        assert cpu_seconds(tree) > before
    finally:
        for pid in reversed(process_tree(parent.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.wait()
