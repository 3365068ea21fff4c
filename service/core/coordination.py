"""How the processes of one server, and replicas sharing a state directory, agree on what they serve.

Every ``DIGITS_REPOSITORY_POLL_SECONDS`` each process: converges to the shared state when its revision changed;
publishes its per-version counts (``stats/<host>-<pid>.json``); with ``DIGITS_REPOSITORY_AUTOLOAD`` loads a new
version directory. One process, the leader (whichever holds the lock file), also runs the rollout and unloads
previous versions whose grace period ended. A change made through any process's API is therefore served by every
process within about one poll interval, and a leader that dies hands over to another process within one more.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import IO

from model.refusal import VersionRefused
from service.core.rollout import RolloutController
from service.core.served_models import ServedModels
from service.core.version_stats import TOTALS_ADAPTER, StatsTotals, sum_totals

log = logging.getLogger(__name__)

LEADER_LOCK = "leader.lock"
STATS_DIR = "stats"
STALE_POLLS = 5  # a process whose counts are this many polls old has gone


class Coordinator:
    def __init__(self, models: ServedModels, poll_seconds: float, autoload: bool, controller: RolloutController | None
                 = None) -> None:  # fmt: skip
        self.models = models
        self.poll_seconds = poll_seconds
        self.autoload = autoload
        self.controller = controller
        self.directory = models.store.directory
        self._name = f"{socket.gethostname()}-{os.getpid()}"
        self._leader_lock: IO[str] | None = None

    @property
    def leader(self) -> bool:
        return self.directory is None or self._leader_lock is not None

    def totals(self) -> dict[str, StatsTotals]:
        """Every live process's counts, per version, added up."""
        parts: dict[str, list[StatsTotals]] = {}
        for counts in self._published():
            for version, totals in counts.items():
                parts.setdefault(version, []).append(totals)
        return {version: sum_totals(totals) for version, totals in parts.items()}

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self.step()
            except Exception:  # the next poll tries again; serving goes on meanwhile
                log.exception("coordination step failed")

    async def step(self) -> None:
        state = self.models.store.read()
        if state is not None and state.revision != self.models.applied_revision:
            await self.models.converge(state)
        if self.autoload:
            await self._load_new_versions()
        self._publish()
        if self._lead():
            if self.controller is not None:
                await self.controller.tick()
            await self._retire()

    def _lead(self) -> bool:
        if self.leader:
            return True
        assert self.directory is not None
        lock = open(self.directory / LEADER_LOCK, "a")  # noqa: SIM115 - held open for as long as this process leads
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return False
        self._leader_lock = lock
        log.info("this process (%s) leads: it runs rollouts and retires previous versions", self._name)
        return True

    async def _load_new_versions(self) -> None:
        state = self.models.store.read()
        known = set(self.models.versions) | (set(state.versions) | set(state.refusals) if state else set())
        for version in self.models.loader.repository.versions():
            if version not in known:
                with contextlib.suppress(VersionRefused):  # recorded in the state, the log and the metrics
                    await self.models.load(version)

    async def _retire(self) -> None:
        state = self.models.store.read()
        if state is None:
            return
        now = time.time()
        due = [version for version, at in state.retire_at.items() if at <= now and version not in
               state.policy.versions()]  # fmt: skip
        if not due:
            return
        with self.models.store.update(self.models.initial_state()) as state:
            for version in due:
                state.retire_at.pop(version, None)
                state.versions = [v for v in state.versions if v != version]
                state.record("unloaded", f"model version {version} retired after its grace period")
        await self.models.converge(state)

    def _stats_dir(self) -> Path | None:
        return None if self.directory is None else self.directory / STATS_DIR

    def _publish(self) -> None:
        directory = self._stats_dir()
        if directory is None:
            return
        directory.mkdir(exist_ok=True)
        counts = {version: asdict(inference.stats.totals) for version, inference in self.models.versions.items()}
        partial = directory / f".{self._name}.json"
        partial.write_text(json.dumps(counts))
        partial.replace(directory / f"{self._name}.json")

    def _published(self) -> list[dict[str, StatsTotals]]:
        directory = self._stats_dir()
        if directory is None:
            return [{version: i.stats.totals for version, i in self.models.versions.items()}]
        fresh_after = time.time() - STALE_POLLS * max(self.poll_seconds, 1.0)
        found = []
        for path in directory.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                if path.stat().st_mtime >= fresh_after:
                    raw = json.loads(path.read_text())
                    found.append({version: TOTALS_ADAPTER.validate_python(t) for version, t in raw.items()})
        return found

    def close(self) -> None:
        directory = self._stats_dir()
        if directory is not None:
            with contextlib.suppress(OSError):
                (directory / f"{self._name}.json").unlink()
        if self._leader_lock is not None:
            self._leader_lock.close()
            self._leader_lock = None
