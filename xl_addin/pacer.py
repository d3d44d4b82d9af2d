"""Pacing and retrying: when to send the next request, and how long to wait after a failure.

Lixinger allows about 1,000 requests a minute per token; past that it answers 429. A
20,000-code loop, or a sheet of formulas recalculating, should never get there, so every
request first takes a slot from the :class:`Pacer` of its token: a sliding window of at
most ``rate`` requests in any ``window`` seconds (``LIXINGER_RATE``, default 1,000 a
minute, 0 turns it off), one per (service, token) shared by every thread of the process.
A slot is stamped again when its request ends, so that the service, which counts a
request when it arrives, never sees more than ``rate`` of them in a window even when
one took long to get there.

:class:`RetryPolicy` is what to do when a request fails in a way worth another try (as
requests takes a urllib3 ``Retry``): how many attempts, the backoff, and the clock and
sleep it waits with. Both take their clock and sleep as arguments, so a test can run a
minute of pacing or a dozen backoffs in no time at all (:class:`ManualClock`) while the
sockets underneath stay real.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

DEFAULT_RATE = 1000  # requests a minute per token (Lixinger's limit is about that)
WINDOW = 60.0


class ManualClock:
    """A clock that moves only when something sleeps on it: ``clock()`` and ``sleep()``
    for :class:`Pacer`, :class:`RetryPolicy` and the sandbox's rate limit. Thread-safe."""

    def __init__(self, start: float = 1000.0):
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self._now += max(0.0, seconds)


class SkippingClock:
    """Real time, except that a wait takes none: ``sleep(s)`` returns at once and moves this
    clock *s* ahead. Deadlines still pass as they would (a budget counts the skipped waits),
    so a retry schedule behaves as in real time, only sooner. Thread-safe."""

    def __init__(self):
        self.skipped = 0.0
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.skipped += max(0.0, seconds)


class Pacer:
    """At most *rate* requests in any *window* seconds, for every thread that shares it.

    ``with pacer.slot():`` around a request: it waits (sleeps) until a slot is free,
    and the slot counts from when the request ended."""

    def __init__(self, rate: int, window: float = WINDOW, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate < 0 or window <= 0:
            raise ValueError("rate must be 0 or more and window above 0")
        self.rate = int(rate)
        self.window = float(window)
        self.clock = clock
        self.sleep = sleep
        self._stamps: list[list] = []  # [time, in flight] of each slot still in the window
        self._done = threading.Condition()  # the bookkeeping's lock; notified when a request ends
        self._queue = threading.Lock()
        self.waited = 0.0  # seconds spent waiting for slots, all threads together

    def __repr__(self) -> str:
        return f"Pacer({self.rate}/{self.window:g}s)"

    def acquire(self) -> list[float]:
        """Wait for a free slot and take it; returns the slot (pass it to :meth:`release`).

        A slot whose request is still in flight counts as arriving now (the service may not
        have seen it yet): it leaves the window only once its request ended and a window
        has passed since."""
        if not self.rate:
            return [0.0, False]
        with self._queue:  # one waiter at a time: the others queue behind it, in order
            while True:
                with self._done:  # only the bookkeeping: a request ending never waits for a sleeper
                    now = self.clock()
                    self._stamps = [s for s in self._stamps if s[1] or s[0] > now - self.window]
                    if len(self._stamps) < self.rate:
                        slot = [now, True]
                        self._stamps.append(slot)
                        return slot
                    # in flight counts as now, so those sort last; the slot that must leave first:
                    first = sorted(((now, True) if s[1] else (s[0], False)) for s in self._stamps)[
                        len(self._stamps) - self.rate]
                    if first[1]:  # still in flight: wait for a request to end, then look again
                        self._done.wait(0.05)
                        continue
                    wait = first[0] + self.window - now
                    self.waited += wait
                self.sleep(wait)

    def release(self, slot: list[float]) -> None:
        """The request of *slot* is over: its slot counts from now (it may have arrived late)."""
        if self.rate:
            with self._done:
                slot[0] = max(slot[0], self.clock())
                slot[1] = False
                self._done.notify_all()

    def slot(self):
        return _Slot(self)


class _Slot:
    def __init__(self, pacer: Pacer):
        self.pacer = pacer

    def __enter__(self):
        self._slot = self.pacer.acquire()
        return self._slot

    def __exit__(self, *exc):
        self.pacer.release(self._slot)


_PACERS: dict[tuple[str, str], Pacer] = {}
_PACERS_LOCK = threading.Lock()


def shared_pacer(host: str, token_value: str, rate: int) -> Pacer:
    """The process's pacer for this service and token (made on first use; a new *rate* replaces it).
    Keyed by a digest of the token: the token itself is not kept here."""
    key = (host, hashlib.sha256(token_value.encode("utf-8")).hexdigest())
    with _PACERS_LOCK:
        pacer = _PACERS.get(key)
        if pacer is None or pacer.rate != rate:
            pacer = _PACERS[key] = Pacer(rate)
        return pacer


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed request is tried again, and how long to wait first.

    Up to ``attempts`` tries in all; before try n+1 it waits ``Retry-After`` when the
    service said so, else ``min(cap, base * 2**(n-1))`` times a jitter between 0.5 and
    1.5; never past the fetch's time budget. ``clock``/``sleep``/``jitter`` are
    injectable (a :class:`ManualClock` in tests)."""

    attempts: int = 5
    base: float = 0.25
    cap: float = 8.0
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    jitter: Callable[[], float] = field(default=random.random, repr=False)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed try number *attempt* (1-based)."""
        if retry_after is not None:
            return retry_after
        return min(self.cap, self.base * 2 ** (attempt - 1)) * (0.5 + self.jitter())

    @classmethod
    def skipping(cls, **kw) -> "RetryPolicy":
        """The same policy on a :class:`SkippingClock`: waits take no real time, deadlines still pass."""
        clock = SkippingClock()
        return cls(clock=clock, sleep=clock.sleep, **kw)

    @classmethod
    def manual(cls, clock: ManualClock | None = None, **kw) -> "RetryPolicy":
        """The same policy on a :class:`ManualClock`: waits take no real time."""
        clock = clock or ManualClock()
        return cls(clock=clock, sleep=clock.sleep, **kw)
