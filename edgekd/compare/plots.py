"""PNG plots of a comparison table (matplotlib's Agg renderer, no display needed).

Figures are built with ``matplotlib.figure.Figure`` rather than ``pyplot`` so that no global
figure state or GUI backend is involved: the same code runs in tests, CI and on a headless
device. Only measured rows are drawn; estimates never share an axis with measurements.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import pandas as pd
from matplotlib.figure import Figure

from edgekd.compare.load import MEASUREMENT
from edgekd.compare.select import row_label

DPI = 110
VERDICT_COLORS = {"meets": "#2a9d4b", "misses": "#d1495b", "unknown": "#8d99ae"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LATENCY_CAPTION = ("Drawn from the recorded percentiles — the result records carry no raw latency samples: "
                   "thin line min–max, dark bar p50–p90, light bar p90–p99, dot p50, × mean.")


@dataclass(frozen=True)
class Plot:
    """One written PNG and the words that go under it in a report."""

    path: Path
    title: str
    caption: str


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["kind"] == MEASUREMENT) & (df["status"] == "ok")]


def _budget(group: pd.DataFrame) -> dict[str, float] | None:
    budgets = [b for b in group["budget"] if isinstance(b, dict)]
    return budgets[-1] if budgets else None


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(text))


def _marker_map(values: list[str]) -> dict[str, str]:
    return {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(sorted(set(values)))}


def _legend_handles(ax, markers: dict[str, str], verdicts: list[str]) -> list:
    """Backends by marker (neutral colour), verdicts by colour, then the lines already drawn."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker=m, color="#cccccc", mec="black", label=b) for b, m in markers.items()]
    handles += [Line2D([], [], ls="", marker="o", color=VERDICT_COLORS.get(v, "#8d99ae"), label=v) for v in verdicts]
    return handles + ax.get_legend_handles_labels()[0]


def plot_accuracy_vs_fps(group: pd.DataFrame, device: str, out_dir: Path) -> Plot | None:
    """mIoU vs FPS for one device: points coloured by verdict, the Pareto front, the target-FPS line."""
    pts = group.dropna(subset=["fps", "miou"])
    if pts.empty:
        return None
    fig = Figure(figsize=(8, 5.2))
    ax = fig.add_subplot()
    markers = _marker_map(list(pts["backend"].astype(str)))
    for backend, sub in pts.groupby(pts["backend"].astype(str)):
        colors = [VERDICT_COLORS.get(v, "#8d99ae") for v in sub["verdict"]]
        ax.scatter(sub["fps"], 100 * sub["miou"], c=colors, marker=markers[backend], s=55,
                   edgecolors="black", linewidths=0.5, zorder=3)
    for _, row in pts.iterrows():
        ax.annotate(f"{row['candidate']}\n{row['precision']}", (row["fps"], 100 * row["miou"]), fontsize=7,
                    xytext=(5, 3), textcoords="offset points")
    front = pts[pts["pareto"] == True].sort_values("fps")  # noqa: E712 (pandas elementwise)
    ax.plot(front["fps"], 100 * front["miou"], "--", color="#264653", lw=1.2, label="Pareto front", zorder=2)
    budget = _budget(group)
    if budget:
        ax.axvline(budget["target_fps"], color="#e76f51", lw=1.5, label=f"target {budget['target_fps']:g} FPS")
        ax.axvspan(0, budget["target_fps"], color="#e76f51", alpha=0.07)
    ax.set_xlim(left=0, right=max(pts["fps"].max(), budget["target_fps"] if budget else 0) * 1.15)
    ax.margins(y=0.12)
    ax.set_xlabel("FPS (synchronous, 1000 / mean latency)")
    ax.set_ylabel("mIoU through the backend (%)")
    ax.set_title(f"{device}: accuracy vs speed")
    ax.grid(alpha=0.3)
    ax.legend(handles=_legend_handles(ax, markers, sorted(set(pts["verdict"].dropna()))), fontsize=8, loc="best")
    path = _save(fig, out_dir / f"{_slug(device)}-miou-vs-fps.png")
    caption = ("Colour = verdict against the device budget (green meets, red misses, grey unknown); marker = "
               "backend. Left of the orange line the candidate is below the target FPS. The dashed line joins "
               "the Pareto front: no other candidate is both faster and more accurate.")
    return Plot(path, f"{device}: mIoU vs FPS", caption)


def plot_kd_curve(df: pd.DataFrame, xkey: str, xlabel: str, out_dir: Path) -> Plot | None:
    """mIoU through the backend against a KD metric of the checkpoint (every device and backend)."""
    pts = _ok(df).dropna(subset=[xkey, "miou"])
    if pts.empty:
        return None
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    series = pts["backend"].astype(str) + "-" + pts["precision"].astype(str) + " @ " + pts["device"].astype(str)
    markers = _marker_map(list(series))
    for name, sub in pts.groupby(series):
        ax.scatter(sub[xkey], 100 * sub["miou"], marker=markers[name], s=50, label=name, zorder=3)
    for _, row in pts.drop_duplicates(subset=["candidate", xkey]).iterrows():
        ax.annotate(row["candidate"], (row[xkey], 100 * row["miou"]), fontsize=7, xytext=(5, 3),
                    textcoords="offset points")
    teacher = pts["teacher_miou"].dropna()
    if not teacher.empty:
        ax.axhline(100 * teacher.max(), color="#264653", ls=":", lw=1.2, label="teacher mIoU (PyTorch, KD metrics)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mIoU through the backend (%)")
    ax.set_title(f"accuracy vs {xlabel.split(' (')[0]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    path = _save(fig, out_dir / f"kd-miou-vs-{xkey.replace('_', '-')}.png")
    caption = (f"{xlabel} comes from the student checkpoint's KD metrics (computed in PyTorch at distillation "
               "time); mIoU is measured through each backend. Only distilled students carry these metrics.")
    return Plot(path, f"mIoU vs {xlabel}", caption)


def plot_latency(group: pd.DataFrame, device: str, out_dir: Path) -> Plot | None:
    """Per-candidate latency distribution from min/p50/p90/p99/max/mean, with the latency budget."""
    pts = group.dropna(subset=["latency_p50_ms", "latency_p90_ms", "latency_p99_ms"]).sort_values("latency_p50_ms")
    if pts.empty:
        return None
    fig = Figure(figsize=(8, 1.2 + 0.42 * len(pts)))
    ax = fig.add_subplot()
    for y, (_, r) in enumerate(pts.iterrows()):
        lo, hi = r["latency_min_ms"], r["latency_max_ms"]
        if pd.notna(lo) and pd.notna(hi):
            ax.plot([lo, hi], [y, y], color="#555555", lw=0.8, zorder=1)
        ax.barh(y, r["latency_p90_ms"] - r["latency_p50_ms"], left=r["latency_p50_ms"], height=0.5,
                color="#2a6f97", zorder=2)
        ax.barh(y, r["latency_p99_ms"] - r["latency_p90_ms"], left=r["latency_p90_ms"], height=0.5,
                color="#a9cce3", zorder=2)
        ax.plot(r["latency_p50_ms"], y, "o", color="white", mec="black", ms=5, zorder=3)
        if pd.notna(r["latency_mean_ms"]):
            ax.plot(r["latency_mean_ms"], y, "x", color="black", ms=5, zorder=3)
    ax.set_yticks(range(len(pts)), [row_label(r) for _, r in pts.iterrows()], fontsize=8)
    budget = _budget(group)
    if budget:
        ax.axvline(budget["latency_budget_ms"], color="#e76f51", lw=1.5,
                   label=f"latency budget {budget['latency_budget_ms']:g} ms")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xlim(left=0)
    ax.set_xlabel("latency per frame (ms), synchronous single stream")
    ax.set_title(f"{device}: latency distribution per candidate")
    ax.grid(axis="x", alpha=0.3)
    path = _save(fig, out_dir / f"{_slug(device)}-latency.png")
    return Plot(path, f"{device}: latency per candidate", LATENCY_CAPTION)


def plot_sustained(group: pd.DataFrame, device: str, out_dir: Path) -> Plot | None:
    """FPS per window over a sustained run, one line per candidate that has one."""
    pts = group[group["sustained_fps"].apply(lambda s: isinstance(s, list) and len(s) > 0)]
    if pts.empty:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    for _, row in pts.iterrows():
        t, fps = zip(*row["sustained_fps"])
        ax.plot(t, fps, marker=".", label=row_label(row))
    budget = _budget(group)
    if budget:
        ax.axhline(budget["target_fps"], color="black", ls="--", lw=1.2, label=f"target {budget['target_fps']:g} FPS")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time since start of the sustained run (s)")
    ax.set_ylabel("FPS in the window")
    ax.set_title(f"{device}: sustained FPS")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    path = _save(fig, out_dir / f"{_slug(device)}-sustained-fps.png")
    caption = "FPS per measurement window during the sustained run; a falling line means throttling or contention."
    return Plot(path, f"{device}: sustained FPS", caption)


def render_plots(df: pd.DataFrame, out_dir: str | Path) -> tuple[list[Plot], list[str]]:
    """Every plot the table supports, and a sentence for each plot that could not be drawn."""
    out_dir = Path(out_dir)
    plots: list[Plot] = []
    skipped: list[str] = []
    ok = _ok(df)
    for device, group in (ok.groupby("device", dropna=False) if not ok.empty else []):
        for fn, what in ((plot_accuracy_vs_fps, "mIoU vs FPS (no row has both mIoU and FPS)"),
                         (plot_latency, "latency distribution (no row has p50/p90/p99)"),
                         (plot_sustained, None)):
            plot = fn(group, str(device), out_dir)
            if plot:
                plots.append(plot)
            elif what:
                skipped.append(f"{device}: no {what}")
        from edgekd.compare.curve import plot_resolution_curves

        curve = plot_resolution_curves(group, str(device), out_dir, df.attrs.get("reference_curve"))
        if curve:
            plots.append(curve)
    for key, label in (("distillation_factor", "distillation factor P_t/P_s"),
                       ("relative_error", "relative error E_s/E_t")):
        plot = plot_kd_curve(df, key, label, out_dir)
        if plot:
            plots.append(plot)
        else:
            skipped.append(f"no mIoU vs {label}: no measured row carries the checkpoint's KD metrics")
    return plots, skipped


def make_plots(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write the PNGs into ``out_dir`` and return their paths."""
    return [p.path for p in render_plots(df, out_dir)[0]]

