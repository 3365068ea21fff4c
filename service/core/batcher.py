"""Dynamic batching: concurrent requests are coalesced into one model call.

Requests wait in a bounded queue (counted in images). The worker takes whole requests
until the batch is full; when the model is idle it waits at most ``max_wait`` for more
to arrive, and while the model is busy the next batch fills up by itself. One worker
task per batch the backend takes at once (``max_batches_in_flight``): each takes a batch,
awaits its result and goes straight on to the next, with no hop through the event loop
in between.

Admission is by time, not count: a request may wait ``max_queue_wait`` for the model (its deadline).
One whose expected wait, from the model's measured throughput, is longer is answered ``queue_full``
(503 with Retry-After) at once; one still queued at its deadline is answered the same and never run
late. A full queue (``max_queue_images``) is the last bound.
On ``stop`` new requests are refused, and everything already admitted (being read, or queued) is still served
before the workers exit: a model version being unloaded finishes what it took.

Idle fast path: a request of at most ``inline_max_images``, on a backend that can predict inline, runs at once in
the event loop's thread when it finds no other request in flight: none being read or prepared (``arrival``), none
queued and no batch running. It would have been a batch of its own anyway, and this way it skips the hand-off to
the model's thread and back. Before it does, it yields to the event loop once, so that requests that arrived with
it (a burst: their tasks are ready to run) reach the batcher first; when any did, everyone is batched.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from service.core.backend import Backend
from service.core.errors import ApiError, ErrorCode
from service.core.metrics import Metrics
from service.core.telemetry.stages import BatchTiming, RequestTiming
from service.core.throughput import Throughput
from service.core.types import BatchOutput


@dataclass
class _Pending:
    inputs: np.ndarray
    layers: frozenset[str]
    future: asyncio.Future[BatchOutput]
    deadline: float
    timing: RequestTiming | None
    enqueued_at: float = field(default_factory=time.perf_counter)


class DeadlineRefusal(ApiError):
    """``queue_full`` because the model could not start the request within its deadline: refused on arrival
    (``when`` is ``admission``) or dropped from the queue at its deadline (``expired``)."""

    def __init__(self, message: str, when: str, retry_after: str) -> None:
        super().__init__(ErrorCode.queue_full, message, headers={"Retry-After": retry_after})
        self.when = when


class Arrival:
    """:meth:`Batcher.arrival`'s context: one object per batcher, since the count it keeps is the batcher's (a
    generator-based context manager would cost a few microseconds a request more)."""

    __slots__ = ("_batcher",)

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    def __enter__(self) -> None:
        self._batcher._arrive()

    def __exit__(self, *_: object) -> None:
        self._batcher._arrived_or_failed()


class Batcher:
    def __init__(
        self,
        backend: Backend,
        metrics: Metrics,
        *,
        max_batch_size: int,
        max_wait_seconds: float,
        max_queue_images: int,
        max_queue_wait_seconds: float = 0.5,
        retry_after_seconds: int = 1,
        inline_max_images: int = 0,
    ) -> None:
        if max_queue_images < max_batch_size:
            raise ValueError("max_queue_images must be at least max_batch_size")
        self._backend = backend
        self._metrics = metrics
        self.max_batch_size = max_batch_size
        self.max_wait_seconds = max_wait_seconds
        self.max_queue_images = max_queue_images
        self.max_queue_wait_seconds = max_queue_wait_seconds
        self.inline_max_images = inline_max_images if backend.predicts_inline else 0
        self.throughput = Throughput(max_batch_size, backend.max_batches_in_flight)
        self._retry_after = str(retry_after_seconds)
        self._queue: deque[_Pending] = deque()
        self._queued_images = 0
        self._arrived = asyncio.Event()
        self._closing = False  # new requests refused
        self._draining = False  # and the workers end once the queue is empty
        self._workers: list[asyncio.Task[None]] = []
        self._running_ends: list[float] = []  # when each batch now running is expected to end
        self._arriving = 0  # requests admitted and being read, not queued yet
        self._arrival = Arrival(self)
        self._deciding = 0  # requests yielding once before they run inline
        self._images_per_request = 1.0  # recent average
        self.model_seconds = 0.0  # spent in the model since start

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._run(), name=f"batcher-{n}") for n in range(self._backend.max_batches_in_flight)
        ]

    @property
    def closing(self) -> bool:
        return self._closing

    async def stop(self) -> None:
        """Refuse new requests, serve every one already admitted, then end the workers."""
        self._closing = True
        while self._arriving or self._deciding:  # admitted and still being read: they queue soon
            await asyncio.sleep(0.005)
        self._draining = True
        self._arrived.set()
        await asyncio.gather(*self._workers)

    def admit(self, images: int = 0) -> None:
        """Raise now when ``images`` more could not start within ``max_queue_wait``: ``queue_full`` (503
        with Retry-After), or ``not_ready`` once stopped."""
        if self._draining:
            raise self._stopped()
        if self._queued_images + images > self.max_queue_images:
            raise self._queue_full(f"the queue is full ({self._queued_images} images waiting)")
        ahead = self._queued_images + round(self._arriving * self._images_per_request)
        expected_wait = self._running_remainder() + self.throughput.seconds_to_serve(ahead)
        if expected_wait > self.max_queue_wait_seconds:
            raise DeadlineRefusal(
                f"the model is busy: {ahead} images wait about {expected_wait * 1000:.0f} ms, "
                f"longer than the {self.max_queue_wait_seconds * 1000:.0f} ms a request may wait; retry shortly",
                "admission",
                self._retry_after,
            )

    def arrival(self) -> Arrival:
        """Around reading and preparing a request, before ``submit``: admitted first (refused before its body
        is read), then counted as images on their way, so that requests admitted together do not all count
        on the same short queue, and as a request in flight."""
        return self._arrival

    def _arrive(self) -> None:
        if self._closing:
            raise self._stopped()
        self.admit()
        self._arriving += 1

    def _arrived_or_failed(self) -> None:
        self._arriving -= 1

    def _stopped(self) -> ApiError:
        return ApiError(ErrorCode.not_ready, "the model is stopping", headers={"Retry-After": self._retry_after})

    def _queue_full(self, why: str) -> ApiError:
        return ApiError(ErrorCode.queue_full, f"{why}; retry shortly", headers={"Retry-After": self._retry_after})

    async def submit(
        self, inputs: np.ndarray, layers: frozenset[str], timing: RequestTiming | None = None
    ) -> BatchOutput:
        """Queue ``inputs`` (float32 ``[n, 1, 28, 28]``) and wait for their share of a batch (with ``layers``);
        refused at once, or answered at its deadline, as the module's docstring says. A small request that finds
        no other in flight runs at once instead (the idle fast path). ``timing`` gets the batch's timing."""
        n = int(inputs.shape[0])
        self.admit(n)
        self._images_per_request += 0.1 * (n - self._images_per_request)
        if n <= self.inline_max_images and self._alone():
            self._deciding += 1
            try:
                await asyncio.sleep(0)  # requests that arrived together reach the batcher first
            finally:
                self._deciding -= 1
            if self._alone():
                return self._serve_inline(inputs, layers, timing)
        deadline = time.perf_counter() + self.max_queue_wait_seconds
        pending = _Pending(inputs, layers, asyncio.get_running_loop().create_future(), deadline, timing)
        self._queue.append(pending)
        self._queued_images += n
        self._metrics.queue_depth.set(self._queued_images)
        self._arrived.set()
        return await pending.future

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._draining:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._fill_or_timeout()
            if self._queue:  # another worker may have taken it meanwhile
                taken_at = time.perf_counter()
                batch = self._take_batch(taken_at)
                if batch:
                    await self._serve(batch, taken_at)

    async def _fill_or_timeout(self) -> None:
        deadline = self._queue[0].enqueued_at + self.max_wait_seconds
        while self._queued_images < self.max_batch_size and not self._draining:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self, now: float) -> list[_Pending]:
        self._drop_expired(now)
        batch: list[_Pending] = []
        size = 0
        while self._queue and size + len(self._queue[0].inputs) <= self.max_batch_size:
            pending = self._queue.popleft()
            size += len(pending.inputs)
            batch.append(pending)
        if not batch and self._queue:  # a single request larger than a batch still gets served, alone
            batch.append(self._queue.popleft())
        self._queued_images -= sum(len(p.inputs) for p in batch)
        self._metrics.queue_depth.set(self._queued_images)
        return batch

    def _drop_expired(self, now: float) -> None:
        """Answer the queued requests whose deadline has passed instead of running them late. Deadlines
        follow arrival order (a fixed wait after arrival), so the expired ones are at the head."""
        while self._queue and self._queue[0].deadline < now:
            pending = self._queue.popleft()
            self._queued_images -= len(pending.inputs)
            if not pending.future.done():
                waited = (now - pending.enqueued_at) * 1000
                message = f"waited {waited:.0f} ms for the model; retry shortly"
                pending.future.set_exception(DeadlineRefusal(message, "expired", self._retry_after))

    def _running_remainder(self) -> float:
        """How long until the model can take the next batch: 0 while a batch slot is free, else until the
        running batch expected to end first ends."""
        if len(self._running_ends) < self._backend.max_batches_in_flight:
            return 0.0
        return max(0.0, min(self._running_ends) - time.perf_counter())

    @property
    def queued(self) -> int:
        """Requests waiting for the model."""
        return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Requests admitted and not answered yet: being read or prepared, about to run inline, queued, or in a
        running batch (counted as one each)."""
        return self._arriving + self._deciding + len(self._queue) + len(self._running_ends)

    def _alone(self) -> bool:
        """No other request in flight than the one deciding (it counts in none of these)."""
        return not (self._arriving or self._deciding or self._queue or self._running_ends)

    def _serve_inline(self, inputs: np.ndarray, layers: frozenset[str], timing: RequestTiming | None) -> BatchOutput:
        started = time.perf_counter()
        batch = BatchTiming(started, len(inputs), [] if timing is None else [timing], model_started=started)
        if timing is not None:
            timing.batch = batch
        self._metrics.inline_batches.inc()
        self._metrics.queue_wait.observe(0.0)
        self._metrics.batch_size.observe(len(inputs))
        try:
            return self._backend.predict_now(inputs, layers)
        finally:
            batch.model_ended = time.perf_counter()
            self._record_batch(len(inputs), batch.model_ended - started)

    def _record_batch(self, images: int, seconds: float) -> None:
        self.model_seconds += seconds
        self._metrics.inference_duration.observe(seconds)
        self.throughput.record(images, seconds)

    async def _serve(self, batch: list[_Pending], started: float) -> None:
        for pending in batch:
            self._metrics.queue_wait.observe(started - pending.enqueued_at)
        timed = [p.timing for p in batch if p.timing is not None]
        inputs = batch[0].inputs if len(batch) == 1 else np.concatenate([p.inputs for p in batch])
        timing = BatchTiming(started, len(inputs), timed)
        for request in timed:
            request.batch = timing
        self._metrics.batch_size.observe(len(inputs))
        expected_end = started + self.throughput.batch_seconds(len(inputs))
        self._running_ends.append(expected_end)
        timing.model_started = time.perf_counter()
        try:
            output = await self._backend.predict(inputs, frozenset().union(*(p.layers for p in batch)))
        except Exception as exc:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        finally:
            timing.model_ended = time.perf_counter()
            self._running_ends.remove(expected_end)
            self._record_batch(len(inputs), timing.model_ended - started)
        offset = 0
        for pending in batch:
            n = len(pending.inputs)
            if not pending.future.done():  # the client may have gone away
                pending.future.set_result(output.slice(offset, offset + n))
            offset += n
