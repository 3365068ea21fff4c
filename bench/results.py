"""What one benchmark run measured: a row per target, workload and connection count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Measurement:
    target: str
    workload: str
    connections: int
    requests: int  # HTTP requests; for the model loop, images
    duration_s: float
    rps: float  # req/s; for the model loop, images/s
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    server_cpu: float  # cores the target's processes kept busy on average
    generator_cpu: float | None  # cores wrk kept busy; None where no load generator ran
    round_rps: tuple[float, ...] = ()  # rps of every round, in order, when the row is the median of several


@dataclass(frozen=True)
class Skipped:
    target: str
    workload: str
    reason: str


@dataclass
class BenchmarkRun:
    """Everything one ``digits benchmark`` run produced, plus how and where it ran."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    targets: dict[str, str]  # name -> description
    measurements: list[Measurement] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def find(self, target: str, workload: str, connections: int) -> Measurement | None:
        for row in self.measurements:
            if (row.target, row.workload, row.connections) == (target, workload, connections):
                return row
        return None
