"""The comparison table: one row per candidate × backend × precision, deltas, and the budget verdict.

The verdict is ``edgekd.core.budget.check_budget``, the same check the bench writes into each
record's ``budget`` block: FPS, p99 latency and peak memory against the device's real-time budget,
and the end-to-end frame time against the frame interval when it was measured. A required figure
that was not measured makes the verdict ``unknown`` rather than ``meets``.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import pandas as pd

from edgekd.errors import EdgekdError
from edgekd.compare.load import ESTIMATE, MEASUREMENT, NUMERIC_COLUMNS, flatten, latest_rows, load_records

from edgekd.core.budget import MEETS, MISSES, UNKNOWN, Budget, check_budget  # noqa: F401  (re-exported)


def verdict(row: Mapping[str, Any], budget: Budget | None) -> tuple[str | None, str | None]:
    """(``meets`` | ``misses`` | ``unknown`` | None, the why) — None for rows that were not measured."""
    if row.get("status") != "ok":
        return None, None
    if budget is None:
        return UNKNOWN, "no budget: the record lacks device.real_time and no profile of that name was found"
    misses, missing = check_budget(row, budget)
    if misses:
        return MISSES, "; ".join(misses + missing)
    if missing:
        return UNKNOWN, "; ".join(missing)
    return MEETS, budget.describe()


def _profile_budget(device: str | None, cache: dict[str, Budget | None]) -> Budget | None:
    """The budget of the profile named like the device, for records that do not carry one."""
    if device is None:
        return None
    if device not in cache:
        from edgekd.profiles import ProfileError, load_profile

        try:
            cache[device] = Budget.from_profile(load_profile(device))
        except ProfileError:
            cache[device] = None
    return cache[device]


def add_verdicts(rows: list[dict[str, Any]]) -> None:
    cache: dict[str, Budget | None] = {}
    for row in rows:
        budget = Budget.from_mapping(row["budget"]) if row.get("budget") else _profile_budget(row["device"], cache)
        row["budget"] = budget.as_dict() if budget else None
        row["verdict"], row["verdict_detail"] = verdict(row, budget)


def add_nokd_deltas(rows: list[dict[str, Any]]) -> None:
    """Δ mIoU versus the same student trained without KD: same device, arch, params, backend, precision, input.

    ``params`` is part of the match so that width variants of one architecture are not compared.
    When several supervised rows match, the latest one is the baseline.
    """
    def key(r: Mapping[str, Any]) -> tuple:
        return (r["kind"], r["device"], r["arch"], r["params"], r["backend"], r["precision"], r["input"])

    baselines: dict[tuple, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: str(r.get("timestamp") or "")):
        if row["method"] == "supervised" and row["status"] == "ok" and row["miou"] is not None:
            baselines[key(row)] = row
    for row in rows:
        base = baselines.get(key(row))
        if row["method"] != "supervised" and base is not None and row["miou"] is not None:
            row["delta_miou_vs_nokd"] = row["miou"] - base["miou"]
            row["nokd_baseline"] = base["candidate"]


COLUMN_ORDER = (
    "device", "kind", "candidate", "arch", "params", "macs", "method", "teacher", "backend", "precision",
    "precision_used", "input", "fused", "miou", "delta_miou_vs_nokd", "delta_miou_vs_fp32", "boundary_f",
    "distillation_factor", "relative_error", "teacher_student_kl", "probability_correlation",
    "latency_p50_ms", "latency_p50_ci", "p50_not_distinguishable_from", "latency_p90_ms", "latency_p99_ms",
    "latency_p99_ci", "fps", "throughput_fps", "e2e_ms", "deadline_miss_pct",
    "peak_mb", "model_mb", "energy_mj", "status", "verdict", "verdict_detail", "reason", "note",
)


def build_table(rows: Iterable[dict[str, Any]], device: str | None = None) -> pd.DataFrame:
    """Rows → the comparison DataFrame: latest row per cell, Δ vs no-KD, verdicts, Pareto flags, sorted."""
    from edgekd.compare.intervals import describe_interval, mark_indistinguishable
    from edgekd.compare.select import mark_pareto

    rows = list(rows)
    if device is not None:
        found = sorted({str(r["device"]) for r in rows})
        rows = [r for r in rows if r["device"] == device]
        if not rows:
            raise EdgekdError(f"no result rows for device {device!r}; the results hold: {', '.join(found) or 'none'}")
    chosen = latest_rows(rows)
    for row in chosen:
        row.setdefault("nokd_baseline", None)
    add_nokd_deltas(chosen)
    add_verdicts(chosen)
    df = pd.DataFrame(chosen)
    if df.empty:
        return df
    rest = [c for c in df.columns if c not in COLUMN_ORDER]
    df = df[[c for c in COLUMN_ORDER if c in df.columns] + rest]
    if "fused" not in df.columns:
        df["fused"] = False
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["latency_p50_ci"] = [describe_interval(r, "p50") for _, r in df.iterrows()]
    df["latency_p99_ci"] = [describe_interval(r, "p99") for _, r in df.iterrows()]
    df = mark_indistinguishable(mark_pareto(df))
    return sort_table(df)


def sort_table(df: pd.DataFrame, column: str | None = None) -> pd.DataFrame:
    """Measurements before estimates, per device; ok rows first; then by ``column`` (default mIoU, then FPS)."""
    from edgekd.compare.format import sort_ascending

    if df.empty:
        return df
    keys = ["device", "_estimate", "_not_ok"]
    asc = [True, True, True]
    for col in ([column] if column else ["miou", "fps"]):
        keys.append(col)
        asc.append(sort_ascending(col))
    keyed = df.assign(_estimate=df["kind"] == ESTIMATE, _not_ok=df["status"] != "ok")
    keyed = keyed.sort_values(keys, ascending=asc, na_position="last", kind="stable")
    return keyed.drop(columns=["_estimate", "_not_ok"]).reset_index(drop=True)


def compare_results(paths_or_records: Any, device: str | None = None) -> pd.DataFrame:
    """The comparison table of the result files/folders (or parsed records) given.

    ``device`` keeps the rows of that device profile only. Skipped corrupt lines are listed in
    ``df.attrs["warnings"]``. Estimates (``kind == "estimate"``) stay in the frame but are never
    mixed with measurements: they sort after them and take no part in Pareto fronts or picks.
    """
    if isinstance(paths_or_records, (str, bytes, Mapping)) or hasattr(paths_or_records, "__fspath__"):
        paths_or_records = [paths_or_records]
    records, warnings = load_records(paths_or_records)
    df = build_table((flatten(r) for r in records), device=device)
    df.attrs["warnings"] = warnings
    return df


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """The measured rows (no estimates)."""
    return df[df["kind"] == MEASUREMENT] if not df.empty else df
