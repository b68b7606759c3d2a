"""A bounded worker pool for blocking, CPU-bound jobs called from asyncio handlers.

The event loop must never run a try-on itself (it would stall every other request, /healthz included), and an
unbounded queue under load only turns into timeouts for everyone. So jobs run on a fixed number of threads,
and at most `capacity` jobs (running + waiting) are admitted; the next one is refused at once with
`QueueFullError`, which the API turns into 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class QueueFullError(Exception):
    """Every worker is busy and the waiting queue is full."""

    def __init__(self, in_flight: int, capacity: int, retry_after_s: int) -> None:
        super().__init__(f"server busy: {in_flight} requests in flight, capacity {capacity}")
        self.in_flight = in_flight
        self.capacity = capacity
        self.retry_after_s = retry_after_s


class JobTimeoutError(Exception):
    """A job was not finished within its time limit (queue wait included)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the request took longer than {timeout_s:g} s")
        self.timeout_s = timeout_s


class WorkerPool:
    """`workers` threads and room for `queue_size` waiting jobs.

    A slot is freed when its job really ends, not when its request gives up: a timed-out job that is already
    running cannot be interrupted (torch has no cancellation), and counting it as gone would let more work in
    than the bound says.
    """

    def __init__(self, workers: int, queue_size: int) -> None:
        self.workers = workers
        self.capacity = workers + queue_size
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fipviton-worker")
        self._lock = threading.Lock()
        self._in_flight = 0
        # Exponential moving average of job seconds, for an honest Retry-After; 1 s until measured.
        self._mean_job_s = 1.0

    @property
    def in_flight(self) -> int:
        """Jobs admitted and not finished (running + waiting)."""
        with self._lock:
            return self._in_flight

    def retry_after_s(self) -> int:
        """Whole seconds until a slot is likely free: about one mean job per worker (at least 1)."""
        with self._lock:
            return max(1, math.ceil(self._mean_job_s / self.workers))

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Admit `fn` or raise `QueueFullError` at once; returns the job's future."""
        with self._lock:
            if self._in_flight >= self.capacity:
                in_flight = self._in_flight
                full = True
            else:
                self._in_flight += 1
                full = False
        if full:
            raise QueueFullError(in_flight, self.capacity, self.retry_after_s())
        try:
            future = self._executor.submit(self._timed, fn)
        except BaseException:
            self._release(None)
            raise
        future.add_done_callback(self._release)
        return future

    async def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """Run `fn` on a worker and await its result; `QueueFullError` when full, `JobTimeoutError` after
        `timeout_s`. A job still waiting at the timeout is dropped; a running one finishes and is discarded."""
        future = self.submit(fn)
        try:
            # Cancelling the asyncio wrapper cancels the job too, if it has not started yet.
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except asyncio.TimeoutError as exc:
            raise JobTimeoutError(timeout_s) from exc

    def shutdown(self) -> None:
        """Drop waiting jobs and stop the threads (a running job finishes first)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _timed(self, fn: Callable[[], T]) -> T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._mean_job_s = 0.8 * self._mean_job_s + 0.2 * elapsed

    def _release(self, _future: Future | None) -> None:
        with self._lock:
            self._in_flight -= 1
