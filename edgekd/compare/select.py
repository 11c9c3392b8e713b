"""Selection: the accuracy-vs-FPS Pareto front per device, and the pick for a device's budget.

A candidate is on the front when no other measured candidate of the same device is at least as
fast *and* at least as accurate, and strictly better in one of the two. The pick is the most
accurate measured candidate that meets all three real-time constraints; when none does, the pick
says which came closest — the smallest worst relative shortfall over the constraints, i.e. the
one that needs the least improvement on its weakest figure — and why every candidate fails.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd

from edgekd.compare.intervals import NOT_DISTINGUISHABLE, describe_interval, indistinguishable
from edgekd.compare.load import MEASUREMENT
from edgekd.compare.table import Budget, check_budget
from edgekd.errors import EdgekdError


def _on_front(points: list[tuple[float, float]], i: int, same_speed: Callable[[int, int], bool]) -> bool:
    fps, acc = points[i]

    def dominates(j: int) -> bool:
        f, a = points[j]
        if same_speed(i, j):  # speeds the run cannot tell apart count as equal
            return a > acc
        return f >= fps and a >= acc and (f > fps or a > acc)

    return not any(dominates(j) for j in range(len(points)) if j != i)


def pareto_front(points: list[tuple[float, float]], same_speed: Callable[[int, int], bool] | None = None) -> list[bool]:
    """For (fps, accuracy) points, whether each is non-dominated (higher is better on both axes).

    ``same_speed(i, j)``: True when points i and j are not distinguishable in speed (their p50
    intervals overlap); such a pair is then ranked by accuracy alone, so noise in the FPS figure
    never pushes a candidate off the front."""
    same = same_speed or (lambda i, j: False)
    return [_on_front(points, i, same) for i in range(len(points))]


def mark_pareto(df: pd.DataFrame) -> pd.DataFrame:
    """Add a boolean ``pareto`` column: on its device's front among measured ok rows with FPS and mIoU."""
    df = df.copy()
    df["pareto"] = False
    eligible = (df["kind"] == MEASUREMENT) & (df["status"] == "ok") & df["fps"].notna() & df["miou"].notna()
    for _, group in df[eligible].groupby("device", dropna=False):
        rows = [r for _, r in group.iterrows()]
        flags = pareto_front(list(zip(group["fps"], group["miou"])), lambda i, j: indistinguishable(rows[i], rows[j]))
        df.loc[group.index, "pareto"] = flags
    return df


def row_label(row: Mapping[str, Any]) -> str:
    """``candidate backend-precision``: how a row is named in picks and plots."""
    return f"{row['candidate']} {row['backend']}-{row['precision']}"


def shortfall(row: Mapping[str, Any], budget: Budget) -> float:
    """Worst relative miss over the constraints (0 when all are met; the factor still needed, minus 1)."""
    ratios = [budget.target_fps / row["fps"] - 1 if row["fps"] else float("inf"),
              row["latency_p99_ms"] / budget.latency_budget_ms - 1, row["peak_mb"] / budget.memory_budget_mb - 1]
    return max(0.0, *ratios)


@dataclass(frozen=True)
class Pick:
    """The candidate chosen for a device, or why there is none."""

    device: str
    budget: Budget
    chosen: dict[str, Any] | None
    reason: str
    closest: dict[str, Any] | None = None
    failures: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def text(self) -> str:
        """Plain text for terminals and reports: the decision, then each failing candidate."""
        lines = [f"{self.device} (budget {self.budget.describe()}): {self.reason}"]
        lines += [f"  - {label}: {why}" for label, why in self.failures]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"device": self.device, "budget": self.budget.as_dict(), "chosen": _plain(self.chosen),
                "reason": self.reason, "closest": _plain(self.closest),
                "failures": [{"candidate": label, "why": why} for label, why in self.failures]}


def _plain(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: (None if not isinstance(v, (dict, list, str)) and pd.isna(v) else v) for k, v in row.items()}


def _figures(row: Mapping[str, Any]) -> str:
    miou = "mIoU not measured" if pd.isna(row["miou"]) else f"mIoU {100 * row['miou']:.1f}%"
    span = describe_interval(row)
    p50 = "" if pd.isna(row.get("latency_p50_ms")) else f"p50 {row['latency_p50_ms']:.1f} ms" + (f" [95% CI {span}]" if span else "") + ", "
    return (f"{miou}, {row['fps']:.1f} FPS, {p50}p99 {row['latency_p99_ms']:.1f} ms, "
            f"peak {row['peak_mb']:.0f} MB")


def _resolve(df: pd.DataFrame, profile: Any) -> tuple[str, Budget]:
    """(device name, budget) from a profile object, a profile name/path, or the single device in ``df``."""
    if profile is None:
        devices = sorted(df["device"].dropna().unique()) if not df.empty else []
        if len(devices) != 1:
            raise EdgekdError(f"pick needs one device; the results hold {devices or 'none'}: pass --device NAME")
        budgets = [b for b in df[df["device"] == devices[0]]["budget"] if isinstance(b, Mapping)]
        if not budgets:
            raise EdgekdError(f"the {devices[0]!r} rows carry no real-time budget and no profile of that name exists; "
                              "pass a profile")
        return devices[0], Budget.from_mapping(budgets[-1])
    if isinstance(profile, str):
        from edgekd.profiles import load_profile

        profile = load_profile(profile)
    return profile.name, Budget.from_profile(profile)


def pick_best(df: pd.DataFrame, profile: Any = None) -> Pick:
    """The most accurate measured candidate meeting ``profile``'s budget (FPS, p99 latency, memory).

    ``profile``: a ``DeviceProfile``, a profile name or YAML path, or None when ``df`` holds one
    device (its recorded budget is used). Estimates and failed/unavailable rows are never picked.
    """
    device, budget = _resolve(df, profile)
    rows = df[(df["device"] == device) & (df["kind"] == MEASUREMENT) & (df["status"] == "ok")] if not df.empty else df
    if rows.empty:
        return Pick(device, budget, None, f"no measured ok rows for device {device!r}; run `edgekd bench --device {device}`")
    meeting, failures = [], []
    for _, row in rows.iterrows():
        misses, missing = check_budget(row, budget)
        if not misses and not missing:
            meeting.append(row)
        else:
            failures.append((row_label(row), "; ".join(misses + missing)))
    if meeting:
        return _choose(device, budget, meeting, failures)
    return _closest(device, budget, rows, failures)


# Candidates this close in mIoU (a fraction) count as equally accurate: the same network through two
# runtimes differs by a few hundredths of a point, and then the faster one is the better pick.
MIOU_TIE = 0.001


def _choose(device: str, budget: Budget, meeting: list[pd.Series], failures: list) -> Pick:
    scored = [r for r in meeting if not pd.isna(r["miou"])]
    if scored:
        top = max(r["miou"] for r in scored)
        tied = [r for r in scored if r["miou"] >= top - MIOU_TIE]
        best, why = _fastest(tied)
        if len(tied) == 1:
            why = f"the most accurate of {len(meeting)} candidate(s) meeting the budget"
        else:
            why = f"{why}, of the {len(tied)} within {100 * MIOU_TIE:.1f} mIoU points of the most accurate, among {len(meeting)} meeting the budget"
    else:
        best, why = _fastest(meeting)
        why = f"no accuracy was measured for the {len(meeting)} candidate(s) meeting the budget; {why}"
    reason = f"pick {row_label(best)} — {why} ({_figures(best)})"
    runner_up = [r for r in scored if r is not best]
    if runner_up:
        nxt = max(runner_up, key=lambda r: (r["miou"], r["fps"]))
        reason += f"; next: {row_label(nxt)} ({_figures(nxt)})"
        if indistinguishable(best, nxt):
            reason += f" — {NOT_DISTINGUISHABLE} from the pick in p50 (95% intervals overlap)"
    return Pick(device, budget, _plain(best.to_dict()), reason, None, tuple(failures))


def _fastest(rows: list[pd.Series]) -> tuple[pd.Series, str]:
    """The fastest row and how it was chosen; rows whose p50 intervals overlap the fastest's are
    a speed tie that the run cannot break, so among them the more accurate, then the smaller
    peak memory wins, and the reason names them."""
    fastest = max(rows, key=lambda r: (r["fps"], _miou(r)))
    ties = [r for r in rows if r is fastest or indistinguishable(r, fastest)]
    if len(ties) == 1:
        return fastest, "the fastest" if len(rows) > 1 else "the only one"
    best = max(ties, key=lambda r: (_miou(r), -(r["peak_mb"] if not pd.isna(r["peak_mb"]) else float("inf"))))
    spans = ", ".join(f"{row_label(r)} {describe_interval(r)} ms" for r in ties)
    return best, (f"{len(ties)} fastest candidates {NOT_DISTINGUISHABLE} in speed (p50 95% intervals overlap: {spans}), "
                  "so the more accurate, then the smaller peak memory")


def _miou(row: Mapping[str, Any]) -> float:
    return -1.0 if pd.isna(row["miou"]) else float(row["miou"])


def _closest(device: str, budget: Budget, rows: pd.DataFrame, failures: list) -> Pick:
    complete = rows.dropna(subset=["fps", "latency_p99_ms", "peak_mb"])
    if complete.empty:
        return Pick(device, budget, None, "no candidate meets the budget, and none has all three figures measured",
                    None, tuple(failures))
    gaps = complete.apply(lambda r: shortfall(r, budget), axis=1)
    near = complete.loc[gaps.idxmin()]
    misses, _ = check_budget(near, budget)
    reason = (f"no candidate meets the budget; closest: {row_label(near)} ({_figures(near)}), which misses by "
              f"{100 * gaps.min():.0f}% on its weakest figure ({'; '.join(misses)})")
    return Pick(device, budget, None, reason, _plain(near.to_dict()), tuple(failures))


def pick_per_device(df: pd.DataFrame, *, skip_without_budget: bool = False) -> dict[str, Pick]:
    """``pick_best`` on each device's measured rows with the budget those rows recorded, by device name.

    A device whose rows carry no budget raises (``edgekd compare --pick``), or is left out with
    ``skip_without_budget`` (the HTML report, which shows picks only where a budget was measured)."""
    rows = df[df["kind"] == MEASUREMENT] if not df.empty else df
    picks: dict[str, Pick] = {}
    for device in (sorted(rows["device"].dropna().unique()) if not rows.empty else []):
        group = rows[rows["device"] == device]
        if skip_without_budget and not any(isinstance(b, Mapping) for b in group["budget"]):
            continue
        picks[str(device)] = pick_best(group, None)
    return picks
