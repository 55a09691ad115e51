"""Back-pressure for the server: per-key rate limits and a fair scheduler for synthesis.

Two cores cannot synthesise for many clients at once; running every request's model call side by
side only makes all of them late (and Perth's torch decoder slows tenfold when it fights for
cores). So synthesis runs one piece at a time per worker, the next piece going to whoever has
received the fewest pieces so far: a new request's first audio comes after at most one piece of
each running stream, not after whole texts. Beyond a bounded number of streams the server says
"busy, retry in N s" (503) at once instead of letting requests time out.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Busy(Exception):
    """The server is at capacity; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimiter:
    """A token bucket per key: ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = float(rate), int(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if the request may go ahead, else the seconds until it may."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class Scheduler:
    """Runs synthesis steps on ``workers`` slots, fewest-pieces-served first; admits at most ``max_streams``."""

    def __init__(self, workers: int = 1, max_streams: int = 16, retry_after: float = 2.0):
        self.workers, self.max_streams, self.retry_after = workers, max_streams, retry_after
        self._cond = threading.Condition()
        self._busy = 0
        self._waiting: list[tuple[int, int]] = []
        self._seq = itertools.count()
        self.streams = 0

    @property
    def busy(self) -> bool:
        """Whether streams other than the caller's are running (the caller's is already admitted)."""
        return self.streams > 1

    def admit(self) -> Callable[[], None]:
        """Count a new stream in, or raise Busy; returns its release function (safe to call twice)."""
        with self._cond:
            if self.streams >= self.max_streams:
                raise Busy(
                    f"the server is busy ({self.streams} requests in progress); retry shortly",
                    self.retry_after,
                )
            self.streams += 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._cond:
                    self.streams -= 1

        return release

    def run(self, priority: int, fn: Callable[[], T]) -> T:
        """Run ``fn`` when a slot is free and no lower ``priority`` value is waiting."""
        ticket = (priority, next(self._seq))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            while self._busy >= self.workers or self._waiting[0] != ticket:
                self._cond.wait()
            heapq.heappop(self._waiting)
            self._busy += 1
            self._cond.notify_all()
        try:
            return fn()
        finally:
            with self._cond:
                self._busy -= 1
                self._cond.notify_all()

    def iterate(self, pieces: Iterator[T], release: Callable[[], None]) -> Iterator[T]:
        """``pieces`` with each step scheduled; ``release`` runs when the stream ends."""
        served = 0
        done = object()
        try:
            while True:
                piece = self.run(served, lambda: next(pieces, done))
                if piece is done:
                    return
                served += 1
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close:
                close()
            release()
