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


CI_LEVEL = 0.95


def _log_binom_pmf(n: int, q: float) -> np.ndarray:
    k = np.arange(n + 1, dtype=np.float64)
    lgamma = np.vectorize(math.lgamma, otypes=[np.float64])
    return lgamma(n + 1.0) - lgamma(k + 1.0) - lgamma(n - k + 1.0) + k * math.log(q) + (n - k) * math.log1p(-q)


def quantile_ci_ranks(n: int, q: float, level: float = CI_LEVEL) -> tuple[int | None, int | None]:
    """0-based ranks (lo, hi) of the sorted samples bounding the ``q`` quantile with ``level`` confidence.

    Distribution-free (order statistics): the count of samples below the true quantile is
    Binomial(n, q), so [x_(lo), x_(hi)] covers it with probability >= ``level`` when
    P(B < lo+1) <= alpha/2 and P(B >= hi+1) <= alpha/2 (B ~ Binomial(n, q)). A side that no rank
    reaches is None: with too few samples the tail quantile has no bound on that side
    (``min_samples_for`` says how many it needs). Assumes independent samples; latencies of a
    loop drift (caches, other jobs), so read the interval as the run's own sampling error, not
    the next run's spread.
    """
    if n < 1:
        return None, None
    alpha = 1.0 - level
    cdf = np.cumsum(np.exp(_log_binom_pmf(n, q)))  # cdf[k] = P(B <= k)
    # lo: the largest rank r with P(B <= r) <= alpha/2 (x_(r) is below the quantile often enough)
    below = np.nonzero(cdf <= alpha / 2)[0]
    lo = int(below[-1]) if below.size else None
    # hi: the smallest rank r with P(B >= r + 1) = 1 - cdf[r] <= alpha/2
    above = np.nonzero(1.0 - cdf <= alpha / 2)[0]
    hi = int(above[0]) if above.size and above[0] < n else None
    return lo, hi


def min_samples_for(q: float, level: float = CI_LEVEL) -> int:
    """Fewest samples for which the ``q`` quantile has a two-sided ``level`` interval: q^n <= alpha/2.

    The early-stopping idea of MLPerf's LoadGen: with n samples the largest one bounds the q
    quantile from above only if all n falling below it is unlikely. p99 at 95 %: 368 samples;
    p50: 6.
    """
    return math.ceil(math.log((1.0 - level) / 2) / math.log(q))


P99_MIN_SAMPLES = min_samples_for(0.99)


def quantile_ci(sorted_ms: np.ndarray, q: float, level: float = CI_LEVEL) -> list[float | None]:
    """[low, high] ms for the ``q`` quantile of ``sorted_ms`` (see ``quantile_ci_ranks``); None = unbounded side."""
    lo, hi = quantile_ci_ranks(int(sorted_ms.size), q, level)
    return [None if lo is None else float(sorted_ms[lo]), None if hi is None else float(sorted_ms[hi])]


@dataclass(frozen=True)
class LatencyStats:
    """Summary of per-iteration latencies in milliseconds; ``cv`` = std / mean (sample std).

    ``p50_ci`` / ``p99_ci`` are ``ci_level`` confidence intervals [low, high] (order statistics,
    a side is None when there are too few samples to bound it; ``p99_min_samples`` is the count
    that bounds both sides of p99).
    """

    n: int
    min: float
    p50: float
    p90: float
    p99: float
    max: float
    mean: float
    std: float
    cv: float
    p50_ci: tuple[float | None, float | None] = (None, None)
    p99_ci: tuple[float | None, float | None] = (None, None)
    ci_level: float = CI_LEVEL
    ci_method: str = "order statistics (binomial, distribution-free)"
    p99_min_samples: int = P99_MIN_SAMPLES

    @property
    def fps(self) -> float:
        """Synchronous single-stream frames per second: 1000 / mean latency."""
        return 1000.0 / self.mean if self.mean > 0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["p50_ci"], d["p99_ci"] = list(self.p50_ci), list(self.p99_ci)
        return {**d, "fps": self.fps}


def summarize(samples_ns: np.ndarray | list[int], level: float = CI_LEVEL) -> LatencyStats:
    """Stats of latencies given in nanoseconds (percentiles by linear interpolation, with intervals)."""
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    if ms.size == 0:
        raise ValueError("no latency samples to summarize")
    std = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    mean = float(ms.mean())
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    ordered = np.sort(ms)
    return LatencyStats(
        n=int(ms.size), min=float(ms.min()), p50=p50, p90=p90, p99=p99, max=float(ms.max()),
        mean=mean, std=std, cv=std / mean if mean > 0 else math.nan,
        p50_ci=tuple(quantile_ci(ordered, 0.5, level)), p99_ci=tuple(quantile_ci(ordered, 0.99, level)),
        ci_level=level, p99_min_samples=min_samples_for(0.99, level),
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

    ``tail_min_iters`` (default: the count that bounds p99 on both sides, 368) is also waited
    for, so a p99 means something; ``hard_limit_s`` caps a very slow model (a 3 s/frame model
    would otherwise need minutes); the row then records ``stopped_by = "hard_limit"``, the
    smaller count and a p99 interval open at the top.
    """

    duration_s: float = 10.0
    min_iters: int = 50
    max_iters: int = 100_000
    hard_limit_s: float = 120.0
    tail_min_iters: int = P99_MIN_SAMPLES


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
        if elapsed >= duration_ns and n >= policy.min_iters and n >= policy.tail_min_iters:
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


CV_WARN = 0.05
OTHER_CPU_WARN = 0.1  # share of the machine's cores


def noise_block(stats: LatencyStats, cores: int | None, load_start: list[float] | None,
                load_end: list[float] | None, cpu: dict[str, Any], stopped_by: str | None = None) -> dict[str, Any]:
    """Was the timed loop noisy? The evidence and one warning per sign (empty ``warnings`` = quiet).

    Signs: CV above ``CV_WARN`` (trtexec warns on an unstable GPU compute time the same way);
    the 1-minute load average above the core count at the start or end; other processes (or the
    hypervisor: steal) taking more than ``OTHER_CPU_WARN`` of the machine's cores during the loop;
    too few samples for a two-sided p99 interval.
    """
    warnings = []
    if math.isfinite(stats.cv) and stats.cv > CV_WARN:
        warnings.append(f"CV {100 * stats.cv:.1f}% > {100 * CV_WARN:.0f}%: latencies unstable")
    loads = [v[0] for v in (load_start, load_end) if v]
    if cores and loads and max(loads) > cores:
        warnings.append(f"load average {max(loads):.2f} > {cores} cores: other work competed for the CPU")
    other, steal = cpu.get("other_cores"), cpu.get("steal_cores")
    if cores and other is not None and other > OTHER_CPU_WARN * cores:
        warnings.append(f"other processes used {other:.2f} of {cores} cores during the timed loop")
    if cores and steal is not None and steal > OTHER_CPU_WARN * cores:
        warnings.append(f"the hypervisor stole {steal:.2f} of {cores} cores during the timed loop")
    if stats.n < stats.p99_min_samples:
        warnings.append(f"{stats.n} samples < {stats.p99_min_samples}: p99 has no upper bound"
                        + (f" (stopped by {stopped_by})" if stopped_by else ""))
    return {"noisy": bool(warnings), "warnings": warnings, "cv": stats.cv, "cv_threshold": CV_WARN,
            "cores": cores, "load_avg_start": load_start, "load_avg_end": load_end,
            "other_cpu_threshold_cores": OTHER_CPU_WARN * cores if cores else None, **cpu}
