"""The serving state every process of a server (and every replica on a shared volume) converges to: the versions
to keep loaded, the traffic policy, the rollout and its history, and the versions refused. One JSON file, written
whole and renamed into place under a lock, with a revision that says when it changed.

With no state directory the state lives in memory: one process, nothing kept across a restart."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from service.core.traffic import TrafficPolicy
from service.core.version_stats import StatsTotals

STATE_FILE = "serving-state.json"
LOCK_FILE = "serving-state.lock"
MAX_EVENTS = 50


class Refusal(BaseModel):
    version: str
    code: str
    message: str
    at: float


class Event(BaseModel):
    at: float
    kind: str  # loaded, unloaded, refused, policy, rollout
    message: str


class Rollout(BaseModel):
    candidate: str
    previous: str  # the stable version when it started
    steps: list[str]  # "shadow", or a candidate share in percent
    step: int = 0
    step_started_at: float
    baselines: dict[str, StatsTotals] = Field(default_factory=dict)  # per version, the totals when the step began
    status: Literal["running", "promoted", "rolled_back", "aborted"] = "running"
    reason: str | None = None
    ended_at: float | None = None


class ServingState(BaseModel):
    revision: int = 0
    versions: list[str] = Field(default_factory=list)  # to keep loaded
    policy: TrafficPolicy
    rollout: Rollout | None = None
    retire_at: dict[str, float] = Field(default_factory=dict)  # a previous stable version: unloaded after this
    refusals: dict[str, Refusal] = Field(default_factory=dict)
    events: list[Event] = Field(default_factory=list)

    def record(self, kind: str, message: str) -> None:
        self.events = [*self.events, Event(at=time.time(), kind=kind, message=message)][-MAX_EVENTS:]


class StateStore:
    """The state in ``directory`` (shared by the processes that serve together), or in memory when None."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: ServingState | None = None
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / STATE_FILE

    def read(self) -> ServingState | None:
        """The current state, or None before anyone wrote one."""
        if self.path is None:
            return None if self._memory is None else self._memory.model_copy(deep=True)
        try:
            return ServingState.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return None

    def revision(self) -> int:
        state = self.read()
        return -1 if state is None else state.revision

    @contextlib.contextmanager
    def update(self, initial: ServingState) -> Iterator[ServingState]:
        """Read (``initial`` when there is none yet), change and write the state, one writer at a time; written
        only when the block ends without an error, with its revision one higher."""
        with self._locked():
            state = self.read() or initial.model_copy(deep=True)
            yield state
            state.revision += 1
            self._write(state)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if self.directory is None:
            yield
            return
        with open(self.directory / LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, state: ServingState) -> None:
        if self.path is None:
            self._memory = state.model_copy(deep=True)
            return
        partial = self.path.with_name(f".{STATE_FILE}.{os.getpid()}")
        partial.write_text(state.model_dump_json(indent=1))
        partial.replace(self.path)  # readers see the old file or the new one, never half of one
