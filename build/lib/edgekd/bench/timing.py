"""The timing core: warm up until stable, then time a callable with ``perf_counter_ns``.

It knows nothing about backends: it takes ``step()`` (one inference on a pre-allocated input)
and ``sync()`` (blocks until device work is done; a no-op on synchronous CPU runtimes) and calls
``sync()`` before every clock read, so asynchronous GPU work is never half-counted. Outliers are
never dropped: the tails (p99, max) are part of the answer.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np

Step = Callable[[], Any]
Sync = Callable[[], None]


def _no_sync() -> None:
    return None


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-iteration latencies in milliseconds; ``cv`` = std / mean (sample std)."""

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    cv: float

    @property
    def fps(self) -> float:
        """Synchronous single-stream frames per second: 1000 / mean latency."""
        return 1000.0 / self.mean if self.mean > 0 else math.nan

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "fps": self.fps}


def summarize(samples_ns: np.ndarray | list[int]) -> LatencyStats:
    """Stats of latencies given in nanoseconds (percentiles by linear interpolation)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no latency samples to summarize")
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    mean = float(ms.mean())
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    return LatencyStats(
        n=int(ms.size), min=float(ms.min()), p50=p50, p90=p90, p99=p99, max=float(ms.max()),
        mean=mean, std=std, cv=std / mean if mean > 0 else math.nan,
    )


def rolling_cv(samples: np.ndarray | list[float], window: int) -> float:
    """Coefficient of variation of the last ``window`` samples (NaN until there are that many)."""
    if len(samples) < window or window < 2:
        return math.nan
    tail = np.asarray(samples[-window:], dtype=np.float64)
    mean = tail.mean()
    return float(tail.std(ddof=1) / mean) if mean > 0 else math.nan


@dataclass(frozen=True)
class WarmupPolicy:
    """Warm up until the rolling CV over ``window`` iterations drops below ``cv_threshold``.

    Bounded by ``max_iters`` and ``max_seconds`` (a noisy shared machine may never settle: then
    the warm-up stops, ``stable`` is False and the row says so). ``min_iters`` always run, so the
    first-inference and allocator effects are behind us before the window is judged.
    """

    window: int = 10
    cv_threshold: float = 0.05
    min_iters: int = 5
    max_iters: int = 1000
    max_seconds: float = 10.0


@dataclass(frozen=True)
class WarmupResult:
    iterations: int
    seconds: float
    stable: bool
    final_cv: float
    stopped_by: str  # "stable" | "max_iters" | "max_seconds"


def warm_up(step: Step, sync: Sync = _no_sync, policy: WarmupPolicy = WarmupPolicy(),
            clock: Callable[[], int] = time.perf_counter_ns) -> WarmupResult:
    """Run ``step`` until latencies are stable by ``policy``; returns what happened (``clock`` for tests)."""
    samples: list[int] = []
    start = clock()
    cv = math.nan
    while True:
        sync()
        t0 = clock()
        step()
        sync()
        t1 = clock()
        samples.append(t1 - t0)
        n = len(samples)
        if n >= max(policy.min_iters, policy.window):
            cv = rolling_cv(samples, policy.window)
            if cv < policy.cv_threshold:
                return WarmupResult(n, (t1 - start) / 1e9, True, cv, "stable")
        if n >= policy.max_iters:
            return WarmupResult(n, (t1 - start) / 1e9, False, cv, "max_iters")
        if (t1 - start) / 1e9 >= policy.max_seconds:
            return WarmupResult(n, (t1 - start) / 1e9, False, cv, "max_seconds")


@dataclass(frozen=True)
class LoopPolicy:
    """Time at least ``min_iters`` and at least ``duration_s``; stop at ``max_iters``.

    ``hard_limit_s`` caps a very slow model (a 3 s/frame model would otherwise need minutes for
    ``min_iters``); the row then records ``stopped_by = "hard_limit"`` and the smaller count.
    """

    duration_s: float = 10.0
    min_iters: int = 50
    max_iters: int = 100_000
    hard_limit_s: float = 120.0


def timed_loop(step: Step, sync: Sync = _no_sync, policy: LoopPolicy = LoopPolicy(),
               clock: Callable[[], int] = time.perf_counter_ns) -> tuple[np.ndarray, str]:
    """Per-iteration latencies in ns (a pre-allocated array, no per-iteration allocation) and why it stopped."""
    samples = np.empty(policy.max_iters, dtype=np.int64)
    duration_ns = int(policy.duration_s * 1e9)
    hard_ns = int(max(policy.hard_limit_s, policy.duration_s) * 1e9)
    start = clock()
    n = 0
    stopped_by = "max_iters"
    while n < policy.max_iters:
        sync()
        t0 = clock()
        step()
        sync()
        t1 = clock()
        samples[n] = t1 - t0
        n += 1
        elapsed = t1 - start
        if elapsed >= duration_ns and n >= policy.min_iters:
            stopped_by = "duration"
            break
        if elapsed >= hard_ns:
            stopped_by = "hard_limit"
            break
    return samples[:n].copy(), stopped_by


def first_call_ms(step: Step, sync: Sync = _no_sync) -> float:
    """Latency of one call, for the first inference after loading (lazy init, kernel compilation)."""
    sync()
    t0 = time.perf_counter_ns()
    step()
    sync()
    return (time.perf_counter_ns() - t0) / 1e6


def windows(step: Step, sync: Sync, total_s: float, window_s: float,
            on_window: Callable[[int, np.ndarray, float], None]) -> int:
    """Sustained load: run ``step`` back to back for ``total_s`` split into equal windows of about
    ``window_s`` (so no short last window skews the throttle ratio); ``on_window(i, samples_ns,
    seconds)`` runs between windows to read temperatures, RSS and energy. Returns the window count."""
    count = max(1, round(total_s / window_s))
    window_ns = int(total_s / count * 1e9)
    clock = time.perf_counter_ns
    buf = np.empty(1_000_000, dtype=np.int64)
    for index in range(count):
        w_start = clock()
        w_end = w_start + window_ns
        n = 0
        while n < buf.size:
            sync()
            t0 = clock()
            step()
            sync()
            t1 = clock()
            buf[n] = t1 - t0
            n += 1
            if t1 >= w_end:
                break
        on_window(index, buf[:n], (clock() - w_start) / 1e9)
    return count
