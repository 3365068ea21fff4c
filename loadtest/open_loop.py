"""Open-loop load: requests sent at a constant arrival rate whatever the server's answers, as real users
do (a closed loop, like wrk's, slows down with the server and hides overload). Also the closed-loop
capacity it is compared with."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from loadtest.workloads import HttpRequest


@dataclass(frozen=True)
class Outcome:
    """One request's fate: ``status`` None when it timed out or the connection failed (``failure`` says which)."""

    kind: str
    status: int | None
    seconds: float
    retry_after: str | None = None
    failure: str | None = None


@dataclass
class LoadResult:
    offered_rate: float
    seconds: float
    outcomes: list[Outcome] = field(default_factory=list)

    def statuses(self) -> Counter[int | None]:
        return Counter(outcome.status for outcome in self.outcomes)

    def latencies(self, status: int = 200) -> np.ndarray:
        return np.array([o.seconds for o in self.outcomes if o.status == status], dtype=np.float64)

    def percentile(self, q: float, status: int = 200) -> float:
        latencies = self.latencies(status)
        return float(np.percentile(latencies, q)) if latencies.size else float("nan")

    @property
    def timeouts(self) -> int:
        return sum(1 for o in self.outcomes if o.failure == "timeout")

    @property
    def failures(self) -> int:
        return sum(1 for o in self.outcomes if o.status is None)


def kind_of(request: HttpRequest) -> str:
    return request.content_type.split("/")[-1]


async def send(session: aiohttp.ClientSession, base_url: str, request: HttpRequest, kind: str = "") -> Outcome:
    started = time.perf_counter()
    kind = kind or kind_of(request)
    try:
        async with session.request(
            request.method, base_url + request.path, data=request.body, headers={"Content-Type": request.content_type}
        ) as response:
            await response.read()
            return Outcome(kind, response.status, time.perf_counter() - started, response.headers.get("Retry-After"))
    except TimeoutError:
        return Outcome(kind, None, time.perf_counter() - started, failure="timeout")
    except aiohttp.ClientError as exc:
        return Outcome(kind, None, time.perf_counter() - started, failure=type(exc).__name__)


def new_session(
    timeout_seconds: float, connections: int, headers: dict[str, str] | None = None
) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, force_close=False),
        timeout=aiohttp.ClientTimeout(total=timeout_seconds),
        headers=headers,
    )


async def closed_loop_capacity(
    base_url: str, requests: Sequence[HttpRequest], *, concurrency: int, seconds: float, timeout_seconds: float = 10
) -> float:
    """Answers (200) per second with ``concurrency`` clients each sending its next request on the last answer."""
    cycle = itertools.cycle(requests)
    answered = 0
    async with new_session(timeout_seconds, concurrency) as session:
        end = time.perf_counter() + seconds

        async def client() -> None:
            nonlocal answered
            while time.perf_counter() < end:
                outcome = await send(session, base_url, next(cycle))
                answered += outcome.status == 200

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return answered / (time.perf_counter() - started)


async def open_loop(
    base_url: str,
    requests: Sequence[tuple[str, HttpRequest]],
    *,
    rate: float,
    seconds: float,
    timeout_seconds: float = 10,
    max_connections: int = 2000,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Send ``rate`` requests a second for ``seconds``, cycling through ``(kind, request)``; every request
    starts on its schedule, however many are still unanswered (up to ``max_connections`` open at once)."""
    result = LoadResult(rate, seconds)
    cycle = itertools.cycle(requests)
    async with new_session(timeout_seconds, max_connections, headers) as session:
        tasks: list[asyncio.Task[Outcome]] = []
        started = time.perf_counter()
        for number in range(int(rate * seconds)):
            delay = started + number / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            kind, request = next(cycle)
            tasks.append(asyncio.create_task(send(session, base_url, request, kind)))
        result.outcomes = list(await asyncio.gather(*tasks))
    return result
