"""Locust load on a stack while the tests restart, stop or kill its containers.

Locust runs headless in its own process with the project's answer-checking users (loadtest/locustfile.py):
a non-200, a wrong label or a dropped connection is a failure. It stops by itself after ``limit_s`` at the
latest; the tests end it sooner with SIGTERM once their action is over.
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.deploy.stack import ROOT

USER_CLASSES = ("PixelsUser", "ScanUploadUser")


@dataclass(frozen=True)
class LoadResult:
    requests: int
    failures: int
    failure_messages: dict[str, int]

    def describe(self) -> str:
        return f"{self.requests} requests, {self.failures} failed: {self.failure_messages}"


class LocustLoad:
    def __init__(
        self, host: str, out_dir: Path, *, users: int = 8, limit_s: int = 240, wrapper: Sequence[str] = ()
    ) -> None:
        """``wrapper``: a command prefix Locust runs under (the Kubernetes tier's: enter its network namespace)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        self._prefix = out_dir / "locust"
        self._log = out_dir / "locust.log"
        self._command = [
            *wrapper, sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
            "--host", host, "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{limit_s}s",
            "--csv", str(self._prefix), "--only-summary", "--stop-timeout", "10", *USER_CLASSES,
        ]  # fmt: skip
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocustLoad:
        with self._log.open("wb") as log:
            self._process = subprocess.Popen(self._command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        time.sleep(3)  # users spawned and requests flowing
        if self._process.poll() is not None:
            raise RuntimeError(f"Locust exited at once:\n{self._log.read_text()[-3000:]}")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        """End the run (users finish the request they are in) and read what Locust counted."""
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        return self.result()

    def result(self) -> LoadResult:
        stats = Path(f"{self._prefix}_stats.csv")
        if not stats.is_file():
            raise RuntimeError(f"Locust wrote no statistics:\n{self._log.read_text()[-3000:]}")
        with stats.open() as file:
            total = next(row for row in csv.DictReader(file) if row["Name"] == "Aggregated")
        with Path(f"{self._prefix}_failures.csv").open() as file:
            messages = {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(file)}
        return LoadResult(int(total["Request Count"]), int(total["Failure Count"]), messages)
