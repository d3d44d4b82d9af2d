"""Timing helpers the benches share: each number a ratio against a baseline measured in the same run."""

from __future__ import annotations

import statistics
import time


def per_call(*fns, n: int = 10000, rounds: int = 9, warm: int = 500) -> list[float]:
    """Best time per call of each function, measured in interleaved rounds (fair under load)."""
    for fn in fns:
        for _ in range(warm):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t) / n)
    return best


def timed(fn, repeat: int) -> tuple[float, object]:
    """Median wall time of *repeat* warm calls (one call first to warm), and the last result."""
    result = fn()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result
