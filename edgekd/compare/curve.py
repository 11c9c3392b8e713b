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


def resolution_figure(df: pd.DataFrame, device: str, reference: str | None = None, mark: Any = None):
    """mIoU vs p50 latency, one panel per backend-precision, one line per model (one colour per model in
    every panel), points labelled HxW; the pick (an ``edgekd.compare.marks.PickMark``) ringed in its panel."""
    from edgekd.compare.figures import figure_legend, freeze_limits, new_figure
    from edgekd.compare.labels import Label, label_figure
    from edgekd.compare.marks import draw_pick

    pts = _points(df[df["device"] == device])
    if pts.empty or pts.groupby(["candidate", "backend", "precision"])["input"].nunique().max() < 2:
        return None
    runtimes = sorted(pts.groupby(["backend", "precision"]).groups)
    models = sorted(pts["candidate"].astype(str).unique())
    colors = {m: f"C{i % 10}" for i, m in enumerate(models)}
    cols = min(2, len(runtimes))  # two panels a row: four in one row make a strip too wide to read
    rows = -(-len(runtimes) // cols)
    fig = new_figure((6.5 * cols, 4.6 * rows + 0.6))
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for spare in axes[len(runtimes):]:
        spare.remove()
    axes = axes[:len(runtimes)]
    labels: dict[Any, list] = {}
    for ax, (backend, precision) in zip(axes, runtimes):
        sub = pts[(pts["backend"] == backend) & (pts["precision"] == precision)]
        labels[ax] = []
        for name, line in sub.groupby("candidate"):
            line = line.sort_values("latency_p50_ms")
            ref = name == reference
            ax.plot(line["latency_p50_ms"], 100 * line["miou"], "-o", lw=2.4 if ref else 1.3, color=colors[str(name)],
                    label=name + (" (reference)" if ref else ""))
            for _, r in line.iterrows():
                hit = mark is not None and mark.is_row(r)
                if hit:
                    draw_pick(ax, r["latency_p50_ms"], 100 * r["miou"], mark, size=220)
                labels[ax].append(Label(r["latency_p50_ms"], 100 * r["miou"],
                                        f"{mark.word}: {r['input']}" if hit else str(r["input"]), hit))
        ax.set_xlim(0, 1.08 * sub["latency_p50_ms"].max())
        ax.margins(y=0.1)
        ax.set_xlabel("p50 latency (ms), synchronous single stream")
        ax.set_ylabel("mIoU through the backend (%)")
        ax.set_title(f"{device} {backend}-{precision}")
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes:  # one legend for the figure: each model once, the pick once
        for h in ax.get_legend_handles_labels()[0]:
            handles.setdefault(h.get_label(), h)
    figure_legend(fig, list(handles.values()), "outside lower center", ncol=min(4, len(handles)))
    for ax in axes:
        freeze_limits(ax)
    label_figure(fig, [(ax, sorted(labels[ax], key=lambda lab: not lab.bold)) for ax in axes])
    return fig


def plot_resolution_curves(df: pd.DataFrame, device: str, out_dir: Any, reference: str | None = None, mark: Any = None):
    """The resolution-curve figure written as ``<device>-resolution-curve.png``."""
    from edgekd.compare.figures import Plot, save, slug

    fig = resolution_figure(df, device, reference, mark)
    if fig is None:
        return None
    path = save(fig, out_dir / f"{slug(device)}-resolution-curve.png")
    caption = ("Each model run at several input sizes (no training): its accuracy-vs-latency curve. A candidate is "
               "worth deploying only above the curve of the teacher (or any model) at a smaller input. The ring is "
               "the pick for the device's budget.")
    return Plot(path, f"{device}: resolution curves", caption)
