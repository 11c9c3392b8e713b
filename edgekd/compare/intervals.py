"""Which candidates' latencies can be told apart: overlap of their p50 confidence intervals.

The bench writes a 95 % order-statistic interval for p50 and p99 in every row (schema v2,
``latency_ms.p50_ci``). Two candidates whose p50 intervals overlap are *not distinguishable* by
that run: ranking one above the other would rank the noise. The table marks them, the Pareto
front treats their speeds as equal, and the pick breaks such ties on something measured apart
(accuracy, then peak memory), saying so. Rows without intervals (schema v1) are judged as before:
no interval, no claim either way.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import pandas as pd

from edgekd.compare.load import MEASUREMENT

NOT_DISTINGUISHABLE = "not distinguishable"


def interval(row: Mapping[str, Any], quantile: str = "p50") -> tuple[float, float] | None:
    """(low, high) ms of the row's ``quantile`` interval; an open side is ±inf; None without an interval."""
    lo, hi = row.get(f"latency_{quantile}_lo_ms"), row.get(f"latency_{quantile}_hi_ms")
    if _missing(lo) and _missing(hi):
        return None
    return (-math.inf if _missing(lo) else float(lo), math.inf if _missing(hi) else float(hi))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def overlap(a: tuple[float, float] | None, b: tuple[float, float] | None) -> bool:
    """True when both intervals exist and share a point (closed intervals)."""
    if a is None or b is None:
        return False
    return a[0] <= b[1] and b[0] <= a[1]


def indistinguishable(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The two rows' p50 intervals overlap: the run cannot say which is faster."""
    return overlap(interval(a), interval(b))


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['candidate']} {row['backend']}-{row['precision']}" + (" fused" if row.get("fused") is True else "")


def mark_indistinguishable(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``p50_not_distinguishable_from``: per device, the measured ok rows whose p50 interval
    overlaps this row's ("; "-joined labels), or None."""
    df = df.copy()
    df["p50_not_distinguishable_from"] = None
    if df.empty:
        return df
    eligible = df[(df["kind"] == MEASUREMENT) & (df["status"] == "ok")]
    for _, group in eligible.groupby("device", dropna=False):
        rows = list(group.iterrows())
        for i, a in rows:
            ties = [_label(b) for j, b in rows if j != i and indistinguishable(a, b)]
            df.at[i, "p50_not_distinguishable_from"] = "; ".join(ties) if ties else None
    return df


def describe_interval(row: Mapping[str, Any], quantile: str = "p50") -> str | None:
    """``"12.1–12.9"`` (ms), ``"12.1–open"`` for a side the samples cannot bound, None without an interval."""
    span = interval(row, quantile)
    if span is None:
        return None
    return "–".join("open" if math.isinf(v) else f"{v:.1f}" for v in span)
