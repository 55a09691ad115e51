"""Back-pressure for the server: per-key rate limits and a fair scheduler for synthesis.

Two cores cannot synthesise for many clients at once; running every request's model call side by
side on more threads than cores only makes all of them late (and Perth's torch decoder slows
tenfold when it fights for cores). So model runs take one of ``workers`` slots, one per model
session (sessions in a pool sleep when idle, so side by side they share the cores), the next slot
going to the stream that has received the fewest pieces so far (among first pieces, the shortest), and
a stream's first piece may stop a piece that has barely started (it reruns afterwards). A slot is
taken only when a step reaches the model, so a stream's closing step never queues. Beyond a bounded
number of streams the server says "busy, retry in N s" (503) at once instead of letting requests
time out.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from ..engine.kokoro import MAX_PHONEMES, holding

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
    """Runs synthesis steps on ``workers`` slots, fewest-pieces-served first; admits at most ``max_streams``.

    Waiting first pieces (priority 0) go shortest first. A first piece may also take a slot back from
    another stream's piece that has barely started:

    * a later piece less than half done: the newcomer's wait shrinks by the rest of that piece, and
      the work thrown away (the half or less already run) is never more than what it saves;
    * a longer first piece whose remaining work exceeds the newcomer's whole piece plus the work
      thrown away: the newcomer gains more than the stopped stream loses. Requests that arrive
      together at an idle server need this: the first is planned before the others are in, so it
      gets the idle server's longer first piece, and the short ones would otherwise queue behind it.

    A piece is taken back at most once. ``preemptions`` and ``preempted_seconds`` count the cost.
    """

    def __init__(self, workers: int = 1, max_streams: int = 16, retry_after: float = 2.0, preempt: bool = True):
        self.workers, self.max_streams, self.retry_after = workers, max_streams, retry_after
        self.preempt = preempt
        self._cond = threading.Condition()
        self._busy = 0
        self._waiting: list[tuple[int, int, int]] = []
        self._seq = itertools.count()
        self._running: set[_Turn] = set()
        self._per_token: float | None = None  # seconds per (token + _OVERHEAD_TOKENS), a moving average
        self.streams = 0
        self.preemptions = 0
        self.preempted_seconds = 0.0

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
        released = []

        def release() -> None:
            with self._cond:
                if not released:
                    released.append(True)
                    self.streams -= 1

        return release

    def run(self, priority: int, fn: Callable[[], T]) -> T:
        """Run ``fn`` when a slot is free and no lower ``priority`` value is waiting; at priority 0 it
        queues as the largest model run would (its size is unknown), so after waiting first pieces."""
        turn = _Turn(self, priority)
        turn.wait(MAX_PHONEMES)
        return self._hold(turn, fn)

    def _hold(self, turn: _Turn, fn: Callable[[], T]) -> T:
        try:
            with holding(turn):
                return fn()
        finally:
            if turn.holding:
                with self._cond:
                    self._release(turn)

    def _acquire(self, turn: _Turn) -> None:
        heapq.heappush(self._waiting, turn.ticket)
        if turn.ticket[0] == 0 and self.preempt:
            self._take_back_for_newcomer(turn)
        while self._busy >= self.workers or self._waiting[0] != turn.ticket:
            self._cond.wait()
        heapq.heappop(self._waiting)
        self._busy += 1
        self._running.add(turn)
        turn.holding = True
        self._cond.notify_all()

    def _release(self, turn: _Turn) -> None:
        self._busy -= 1
        self._running.discard(turn)
        turn.holding = False
        self._cond.notify_all()

    def _take_back_for_newcomer(self, newcomer: _Turn) -> None:
        if self._busy < self.workers or self._per_token is None or any(t.taken for t in self._running):
            return
        now = time.monotonic()

        def worth_stopping(t: _Turn) -> bool:
            done = now - t.since
            left = self._per_token * (t.tokens + _OVERHEAD_TOKENS) - done
            if t.ticket[0] > 0:
                return done < left  # less than half done: what is thrown away is less than what the newcomer saves
            return left > self._per_token * (newcomer.tokens + _OVERHEAD_TOKENS) + done

        candidates = [
            t
            for t in self._running
            if t.options is not None
            and not t.was_taken
            and not t.contended()  # else the model would go to that waiting thread, not the newcomer
            and worth_stopping(t)
        ]
        if candidates:
            victim = max(candidates, key=lambda t: t.since)  # the youngest wastes least
            victim.taken = True
            victim.options.terminate = True

    def _learn(self, tokens: int, seconds: float) -> None:
        rate = seconds / (tokens + _OVERHEAD_TOKENS)
        self._per_token = rate if self._per_token is None else 0.8 * self._per_token + 0.2 * rate

    def iterate(self, pieces: Iterator[T], release: Callable[[], None]) -> Iterator[T]:
        """``pieces`` with each step scheduled; ``release`` runs when the stream ends."""
        served = 0
        done = object()
        try:
            while True:
                # the slot is taken at the step's first model run, so steps that turn out to have
                # nothing to synthesise (the end of a stream) never queue behind others
                piece = self._hold(_Turn(self, served), lambda: next(pieces, done))
                if piece is done:
                    return
                served += 1
                yield piece
        finally:
            close = getattr(pieces, "close", None)
            if close:
                close()
            release()


# A model run costs about as much as this many extra tokens: Kokoro renders ~0.35 s of leading silence
# and lengthens a piece's last sound for every piece (frames ~ 2 x tokens + 32: 46 for 4 tokens, 84 for
# 26, 174 for 71; the time follows the frames).
_OVERHEAD_TOKENS = 16


class _Turn:
    """One scheduled step's hold on a slot, as the engine sees it (:class:`voxclone.engine.kokoro.Turn`)."""

    def __init__(self, scheduler: Scheduler, priority: int):
        self.scheduler = scheduler
        self.priority, self.seq = priority, next(scheduler._seq)
        self.ticket = (priority, 0, self.seq)  # set again at the first wait, when the run's size is known
        self.options = None  # the model run in progress, if any
        self.since = 0.0
        self.tokens = 0
        self.holding = self.taken = self.was_taken = False
        self.contended: Callable[[], bool] = lambda: False

    def wait(self, tokens: int) -> None:
        with self.scheduler._cond:
            if not self.holding:
                if not self.was_taken:  # a stopped piece queues again in its old place
                    self.tokens = tokens
                    self.ticket = (self.priority, tokens if self.priority == 0 else 0, self.seq)
                self.scheduler._acquire(self)

    def begin(self, run_options, tokens: int, contended: Callable[[], bool]) -> None:
        with self.scheduler._cond:
            self.options, self.since, self.tokens = run_options, time.monotonic(), tokens
            self.contended = contended

    def finished(self, seconds: float) -> None:
        with self.scheduler._cond:
            self.options = None
            self.taken = False  # a stop that came too late to matter
            self.scheduler._learn(self.tokens, seconds)

    def interrupted(self) -> bool:
        s = self.scheduler
        with s._cond:
            self.options = None
            if not self.taken:
                return False
            s.preemptions += 1
            s.preempted_seconds += time.monotonic() - self.since
            self.taken, self.was_taken = False, True
            s._release(self)  # to the newcomer; the engine's wait() queues again in the same place

        return True
