"""The resolution curve: each model's mIoU against p50 latency over its input sizes, per backend-precision.

A candidate is judged against a reference model run at smaller inputs (no training): on the same
device, backend and precision, the reference's mIoU is interpolated linearly at the candidate's
p50 latency. Outside the reference's latency range there is nothing to interpolate; the verdict
then says so, unless dominance decides it (slower than every reference point and less accurate
than the best of them: below; faster than every point and more accurate than all: above).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from edgekd.errors import EdgekdError
from edgekd.core.suggest import did_you_mean

GROUP = ["device", "backend", "precision"]


def _points(df: pd.DataFrame) -> pd.DataFrame:
    ok = (df["kind"] == "measurement") & (df["status"] == "ok")
    return df[ok].dropna(subset=["miou", "latency_p50_ms"])


def resolve_reference(df: pd.DataFrame, model: str) -> str:
    """The candidate name ``model`` stands for: a candidate name, or an arch held by exactly one candidate."""
    names = sorted(df["candidate"].dropna().astype(str).unique())
    if model in names:
        return model
    by_arch = sorted(df[df["arch"] == model]["candidate"].dropna().astype(str).unique())
    if len(by_arch) == 1:
        return by_arch[0]
    if len(by_arch) > 1:
        raise EdgekdError(f"--reference-curve {model!r} is the arch of several candidates ({', '.join(by_arch)}); name one")
    hint = did_you_mean(model, names, template=" (did you mean {!r}?)")
    raise EdgekdError(f"--reference-curve {model!r} is not a candidate{hint}; candidates: {', '.join(names) or 'none'}")


def versus_curve(miou: float, latency: float, curve: pd.DataFrame) -> tuple[float | None, str]:
    """(Δ mIoU vs the interpolated curve or None, the verdict text) for one point against one curve."""
    curve = curve.sort_values("latency_p50_ms")
    lat, acc = curve["latency_p50_ms"].to_numpy(float), curve["miou"].to_numpy(float)
    if len(curve) == 0:
        return None, "no reference point on this backend"
    if lat[0] <= latency <= lat[-1]:
        delta = miou - float(np.interp(latency, lat, acc))
        return delta, f"{'above' if delta >= 0 else 'below'} ({100 * delta:+.1f} pts at {latency:.1f} ms)"
    best = curve.loc[curve["miou"].idxmax()]
    if latency > lat[-1]:
        if miou < acc.max():
            return None, f"below: slower than the whole curve and less accurate than its {best['input']} point"
        return None, f"out of range: slower than the whole curve ({lat[0]:.1f}–{lat[-1]:.1f} ms)"
    if miou >= acc.max():
        return None, "above: faster and more accurate than every point of the curve"
    return None, f"out of range: faster than the whole curve ({lat[0]:.1f}–{lat[-1]:.1f} ms)"


def add_curve_verdicts(df: pd.DataFrame, model: str) -> pd.DataFrame:
    """Columns ``delta_miou_vs_curve`` and ``vs_curve`` for every measured row not of the reference model."""
    ref = resolve_reference(df, model)
    df = df.copy()
    df["delta_miou_vs_curve"], df["vs_curve"] = np.nan, None
    pts = _points(df)
    for key, group in pts.groupby(GROUP, dropna=False):
        curve = group[group["candidate"] == ref]
        for idx, row in group[group["candidate"] != ref].iterrows():
            if curve.empty:
                df.at[idx, "vs_curve"] = f"no {ref} point on {key[1]}-{key[2]}"
                continue
            delta, text = versus_curve(row["miou"], row["latency_p50_ms"], curve)
            df.at[idx, "delta_miou_vs_curve"] = np.nan if delta is None else delta
            df.at[idx, "vs_curve"] = f"{text} vs {ref}"
    df.attrs["reference_curve"] = ref
    return df


def plot_resolution_curves(df: pd.DataFrame, device: str, out_dir: Any, reference: str | None = None):
    """mIoU vs p50 latency, one panel per backend-precision, one line per model, points labelled HxW."""
    from matplotlib.figure import Figure

    from edgekd.compare.plots import Plot, _save, _slug

    pts = _points(df[df["device"] == device])
    if pts.empty or pts.groupby(["candidate", "backend", "precision"])["input"].nunique().max() < 2:
        return None
    runtimes = sorted(pts.groupby(["backend", "precision"]).groups)
    fig = Figure(figsize=(6.5 * len(runtimes), 4.8))
    axes = fig.subplots(1, len(runtimes), squeeze=False)[0]
    for ax, (backend, precision) in zip(axes, runtimes):
        sub = pts[(pts["backend"] == backend) & (pts["precision"] == precision)]
        for name, line in sub.groupby("candidate"):
            line = line.sort_values("latency_p50_ms")
            ref = name == reference
            ax.plot(line["latency_p50_ms"], 100 * line["miou"], "-o", lw=2.4 if ref else 1.3, label=name + (" (reference)" if ref else ""))
            for _, r in line.iterrows():
                ax.annotate(r["input"], (r["latency_p50_ms"], 100 * r["miou"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.set_xlim(left=0)
        ax.set_xlabel("p50 latency (ms), synchronous single stream")
        ax.set_ylabel("mIoU through the backend (%)")
        ax.set_title(f"{device} {backend}-{precision}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    path = _save(fig, out_dir / f"{_slug(device)}-resolution-curve.png")
    caption = ("Each model run at several input sizes (no training): its accuracy-vs-latency curve. A candidate is "
               "worth deploying only above the curve of the teacher (or any model) at a smaller input.")
    return Plot(path, f"{device}: resolution curves", caption)
