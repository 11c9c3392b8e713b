"""The timing core on known samples and a scripted fake clock (no backend involved)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgekd.core.timing import (
    LoopPolicy, WarmupPolicy, first_call_ms, rolling_cv, summarize, timed_loop, warm_up, windows,
)


class ScriptedDevice:
    """A fake device: each ``step`` advances a fake clock by the next scripted duration (ms)."""

    def __init__(self, durations_ms: list[float], repeat_last: bool = True) -> None:
        self.durations = list(durations_ms)
        self.repeat_last = repeat_last
        self.now = 0
        self.steps = 0
        self.syncs = 0

    def clock(self) -> int:
        return self.now

    def step(self) -> None:
        i = min(self.steps, len(self.durations) - 1)
        self.now += int(self.durations[i] * 1e6)
        self.steps += 1

    def sync(self) -> None:
        self.syncs += 1


def test_summarize_on_known_samples() -> None:
    ns = np.arange(1, 101) * 1_000_000  # 1..100 ms
    s = summarize(ns)
    assert (s.n, s.min, s.max) == (100, 1.0, 100.0)
    assert s.p50 == pytest.approx(50.5) and s.p90 == pytest.approx(90.1) and s.p99 == pytest.approx(99.01)
    assert s.mean == pytest.approx(50.5) and s.std == pytest.approx(29.011491975882016)
    assert s.cv == pytest.approx(29.011491975882016 / 50.5)
    assert s.fps == pytest.approx(1000 / 50.5)
    single = summarize([2_000_000])
    assert single.std == 0.0 and single.p99 == 2.0
    with pytest.raises(ValueError):
        summarize([])


def test_rolling_cv() -> None:
    assert math.isnan(rolling_cv([1, 2], 3))
    assert rolling_cv([100, 5, 5, 5, 5], 4) == 0.0
    assert rolling_cv([1, 2, 3], 3) == pytest.approx(1 / 2)


def test_warm_up_stops_once_the_window_is_stable() -> None:
    dev = ScriptedDevice([80, 5, 40, 12, 30, 8] + [10] * 50)
    res = warm_up(dev.step, dev.sync, WarmupPolicy(window=5, cv_threshold=0.02, min_iters=3, max_iters=100), clock=dev.clock)
    assert res.stable and res.stopped_by == "stable"
    assert res.iterations == 6 + 5  # the first window made only of steady 10 ms steps
    assert res.final_cv == 0.0
    assert dev.syncs == 2 * res.iterations  # a sync before and after every timed call


def test_warm_up_is_bounded_when_never_stable() -> None:
    noisy = ScriptedDevice([5, 50] * 1000)
    by_count = warm_up(noisy.step, noisy.sync, WarmupPolicy(window=4, cv_threshold=0.05, max_iters=30, max_seconds=1e9),
                       clock=noisy.clock)
    assert (by_count.stable, by_count.stopped_by, by_count.iterations) == (False, "max_iters", 30)
    slow = ScriptedDevice([5, 50] * 1000)
    by_time = warm_up(slow.step, slow.sync, WarmupPolicy(window=4, max_iters=10_000, max_seconds=0.5), clock=slow.clock)
    assert by_time.stopped_by == "max_seconds" and not by_time.stable
    assert by_time.seconds >= 0.5 and by_time.iterations == 19  # 9.5 pairs of 55 ms pass 0.5 s


def test_timed_loop_honours_min_iters_duration_and_limits() -> None:
    dev = ScriptedDevice([100])  # 100 ms per call
    samples, why = timed_loop(dev.step, dev.sync, LoopPolicy(duration_s=0.2, min_iters=7, max_iters=100, tail_min_iters=0), clock=dev.clock)
    assert (len(samples), why) == (7, "duration")  # min_iters outlasts the duration
    dev = ScriptedDevice([1])
    samples, why = timed_loop(dev.step, dev.sync, LoopPolicy(duration_s=0.05, min_iters=3, max_iters=1000, tail_min_iters=0), clock=dev.clock)
    assert (len(samples), why) == (50, "duration")
    dev = ScriptedDevice([1])  # by default the loop waits for the samples a two-sided p99 interval needs
    samples, why = timed_loop(dev.step, dev.sync, LoopPolicy(duration_s=0.05, min_iters=3, max_iters=1000), clock=dev.clock)
    assert (len(samples), why) == (368, "duration")
    assert np.all(samples == 1_000_000)
    dev = ScriptedDevice([1])
    samples, why = timed_loop(dev.step, dev.sync, LoopPolicy(duration_s=10, min_iters=3, max_iters=20), clock=dev.clock)
    assert (len(samples), why) == (20, "max_iters")
    dev = ScriptedDevice([3000])  # a 3 s/frame model
    samples, why = timed_loop(dev.step, dev.sync, LoopPolicy(duration_s=1, min_iters=50, hard_limit_s=10), clock=dev.clock)
    assert (len(samples), why) == (4, "hard_limit")


def test_timed_loop_on_the_real_clock_measures_sleeps() -> None:
    import time

    samples, why = timed_loop(lambda: time.sleep(0.002), policy=LoopPolicy(duration_s=0.05, min_iters=5))
    stats = summarize(samples)
    assert why == "duration" and stats.n >= 5 and stats.min >= 2.0 and stats.p50 < 20


def test_first_call_and_windows() -> None:
    import time

    assert first_call_ms(lambda: time.sleep(0.01)) >= 10.0
    seen = []
    count = windows(lambda: time.sleep(0.001), lambda: None, total_s=0.3, window_s=0.1,
                    on_window=lambda i, s, sec: seen.append((i, s.size, sec)))
    assert count == 3 and [i for i, _, _ in seen] == [0, 1, 2]
    assert all(n >= 5 and 0.09 < sec < 0.3 for _, n, sec in seen)
    assert windows(lambda: None, lambda: None, 0.05, 10.0, lambda *a: None) == 1  # shorter than a window: one window
