"""The cpu backend's timing loop: warm up, calibrate passes per sample, collect samples.

Kept apart from the backend so it can be tested with a fake clock and a fake
machine: it sees only a callable to time, a device sync and a clock.
"""
from __future__ import annotations

import gc
import itertools
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

# A sample must be long enough that reading the clock costs at most this fraction of it.
MAX_TIMER_OVERHEAD = 1e-4
# Above this many samples, iterations per sample grow instead (keeps stored results small).
MAX_SAMPLES = 1000
# Warm-up goes on while its later half of passes runs faster than this fraction of its earlier
# half (a warm-up that is still speeding up is not over).
SETTLED = 0.95


@dataclass
class Measurement:
    """Per-iteration times of each sample, and how they were taken."""

    samples: list[float]  # seconds per forward pass, one entry per sample
    iters_per_sample: int
    timer_overhead_s: float
    warmup_passes: int
    warmup_s: float

    def stats(self) -> dict[str, float]:
        s = sorted(self.samples)
        q1, _, q3 = statistics.quantiles(s, n=4, method="inclusive")
        return {"median": statistics.median(s), "iqr": q3 - q1, "min": s[0],
                "mean": statistics.fmean(s), "q1": q1, "q3": q3}


def timer_overhead(sync: Callable[[], None], clock: Callable[[], float]) -> float:
    """Median cost of one timed empty block: a sync and two clock reads."""
    costs = []
    for _ in range(21):
        sync()
        t0 = clock()
        sync()
        costs.append(clock() - t0)
    return statistics.median(costs)


def time_blocks(
    run_once: Callable[[], Any],
    sync: Callable[[], None],
    *,
    min_time: float,
    min_samples: int,
    warmup: float,
    progress: Callable[[int, int, str], None],
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Warm up, calibrate iterations per sample, then collect samples until min_time.

    Each sample times ``iters`` back-to-back calls between two clock reads (with
    a device sync before each read) and is stored divided by ``iters``.
    """
    overhead = timer_overhead(sync, clock)

    # Warm-up: the first pass pays for lazy initialisation (and compiling), so the warm-up
    # time counts after it; then go on while passes are still getting faster.
    warm_times: list[float] = []
    warm_start = clock()
    settle_deadline = math.inf
    while True:
        sync()
        t0 = clock()
        run_once()
        sync()
        t1 = clock()
        warm_times.append(t1 - t0)
        if len(warm_times) == 1:
            first_done = t1
            settle_deadline = t1 + max(5 * warmup, 5.0)
        since_first = t1 - first_done
        progress(int(min(since_first, warmup) * 1000), int(warmup * 1000) or 1, "warming up")
        after_first = warm_times[1:]
        if len(after_first) < 4 or since_first < warmup:
            continue
        half = len(after_first) // 2  # settled: the later half is no faster than the earlier
        if (statistics.median(after_first[half:]) >= SETTLED * statistics.median(after_first[:half])
                or t1 > settle_deadline):
            break
    per_iter = statistics.median(warm_times[-max(1, (len(warm_times) - 1) // 4):])
    warmup_s = clock() - warm_start

    iters = max(1, math.ceil(overhead / (MAX_TIMER_OVERHEAD * per_iter)),
                math.ceil(min_time / (MAX_SAMPLES * per_iter)))
    expected_total = max(min_time, min_samples * iters * per_iter)

    samples: list[float] = []
    measured = 0.0
    repeat = itertools.repeat
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        while measured < min_time or len(samples) < min_samples:
            sync()
            t0 = clock()
            for _ in repeat(None, iters):
                run_once()
            sync()
            elapsed = clock() - t0
            samples.append(elapsed / iters)
            measured += elapsed
            progress(int(min(measured, expected_total) * 1000), int(expected_total * 1000),
                     "measuring")
    finally:
        if gc_was_enabled:
            gc.enable()
    return Measurement(samples=samples, iters_per_sample=iters, timer_overhead_s=overhead,
                       warmup_passes=len(warm_times), warmup_s=warmup_s)
