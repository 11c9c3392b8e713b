"""PNG plots of a comparison table (matplotlib's Agg renderer, no display needed).

Figures are built with ``matplotlib.figure.Figure`` rather than ``pyplot`` so that no global
figure state or GUI backend is involved: the same code runs in tests, CI and on a headless
device. Only measured rows are drawn; estimates never share an axis with measurements. Each
device's pick (what ``compare --pick`` prints) is ringed wherever its point appears, point labels
are placed clear of each other and of the axes edge (edgekd.compare.labels), and every legend
entry names something drawn. ``*_figure`` functions build the Figure (what the tests inspect),
``plot_*`` write it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd
from matplotlib.figure import Figure

from edgekd.compare.figures import Plot, budget_of, figure_legend, freeze_limits, new_figure, save, sizes_vary, slug
from edgekd.compare.labels import Label, label_figure, settle_layout
from edgekd.compare.load import MEASUREMENT
from edgekd.compare.marks import GID as PICK_GID
from edgekd.compare.marks import PickMark, draw_pick, find_pick, pick_marks
from edgekd.compare.select import row_label

VERDICT_COLORS = {"meets": "#2a9d4b", "misses": "#d1495b", "unknown": "#8d99ae"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LATENCY_CAPTION = ("Drawn from the recorded percentiles — the result records carry no raw latency samples: "
                   "thin line min–max, dark bar p50–p90, light bar p90–p99, dot p50, × mean.")


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    return df[(df["kind"] == MEASUREMENT) & (df["status"] == "ok")]


def _marker_map(values: list[str]) -> dict[str, str]:
    return {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(sorted(set(values)))}


def _glyph_handles(markers: dict[str, str], verdicts: list[str]) -> list:
    """Backends by marker (neutral colour), verdicts by colour."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], ls="", marker=m, color="#cccccc", mec="black", label=b) for b, m in markers.items()]
    return handles + [Line2D([], [], ls="", marker="o", color=VERDICT_COLORS.get(v, "#8d99ae"), label=v) for v in verdicts]


def _draw_front(ax, pts: pd.DataFrame) -> None:
    """The Pareto front: a dashed line through its points, or a ring when it is one point (a line
    through one point draws nothing, and a legend entry must never name nothing)."""
    front = pts[pts["pareto"] == True].sort_values("fps")  # noqa: E712 (pandas elementwise)
    if front.empty:
        return
    one = len(front) == 1
    ax.plot(front["fps"], 100 * front["miou"], ls="none" if one else "--", marker="o" if one else "", ms=14,
            mfc="none", mec="#264653", mew=1.2, color="#264653", lw=1.2, zorder=2,
            label="Pareto front (one point)" if one else "Pareto front")


def accuracy_vs_fps_figure(group: pd.DataFrame, device: str, mark: PickMark | None = None) -> Figure | None:
    """mIoU vs FPS for one device: points coloured by verdict, the Pareto front, the target-FPS line, the pick."""
    pts = group.dropna(subset=["fps", "miou"])
    if pts.empty:
        return None
    fig = new_figure((13, 8.5) if len(pts) > 30 else (10.5, 6.8) if len(pts) > 10 else (8.5, 5.2))
    ax = fig.add_subplot()
    markers = _marker_map(list(pts["backend"].astype(str)))
    for backend, sub in pts.groupby(pts["backend"].astype(str)):
        colors = [VERDICT_COLORS.get(v, "#8d99ae") for v in sub["verdict"]]
        ax.scatter(sub["fps"], 100 * sub["miou"], c=colors, marker=markers[backend], s=55,
                   edgecolors="black", linewidths=0.5, zorder=3)
    _draw_front(ax, pts)
    picked = find_pick(pts, {device: mark}) if mark else []
    for idx, m in picked:
        draw_pick(ax, pts.at[idx, "fps"], 100 * pts.at[idx, "miou"], m)
    budget = budget_of(group)
    if budget:
        ax.axvline(budget["target_fps"], color="#e76f51", lw=1.5, label=f"target {budget['target_fps']:g} FPS")
        ax.axvspan(0, budget["target_fps"], color="#e76f51", alpha=0.07)
    ax.set_xlim(left=0, right=max(pts["fps"].max(), budget["target_fps"] if budget else 0) * 1.15)
    ax.margins(y=0.12)
    ax.set_xlabel("FPS (synchronous, 1000 / mean latency)")
    ax.set_ylabel("mIoU through the backend (%)")
    ax.set_title(f"{device}: accuracy vs speed")
    ax.grid(alpha=0.3)
    figure_legend(fig, _glyph_handles(markers, sorted(set(pts["verdict"].dropna()))) + ax.get_legend_handles_labels()[0],
                  "outside right upper")
    freeze_limits(ax)
    sizes, marked = sizes_vary(pts), dict(picked)
    front = set(pts.index[pts["pareto"] == True])  # noqa: E712 (pandas elementwise)
    ranked = sorted(pts.index, key=lambda idx: (idx not in marked, idx not in front))
    labels = [Label(pts.at[idx, "fps"], 100 * pts.at[idx, "miou"], _point_text(pts.loc[idx], sizes, marked.get(idx)),
                    idx in marked) for idx in ranked]  # the pick's label first, then the front's: they get the best places
    label_figure(fig, [(ax, labels)])
    return fig


def _point_text(row: pd.Series, sizes: bool, mark: PickMark | None) -> str:
    head = f"{mark.word}: {row['candidate']}" if mark else str(row["candidate"])
    return f"{head}\n{str(row['input']) + ' ' if sizes else ''}{row['precision']}"


def plot_accuracy_vs_fps(group: pd.DataFrame, device: str, out_dir: Path, mark: PickMark | None = None) -> Plot | None:
    """The mIoU-vs-FPS figure written as ``<device>-miou-vs-fps.png``."""
    fig = accuracy_vs_fps_figure(group, device, mark)
    if fig is None:
        return None
    path = save(fig, out_dir / f"{slug(device)}-miou-vs-fps.png")
    caption = ("Colour = verdict against the device budget (green meets, red misses, grey unknown); marker = "
               "backend. Left of the orange line the candidate is below the target FPS. The dashed line joins "
               "the Pareto front: no other candidate is both faster and more accurate. The black ring is the "
               "pick for the budget (a grey ring: the closest candidate, when none meets it).")
    return Plot(path, f"{device}: mIoU vs FPS", caption)


def kd_curve_figure(df: pd.DataFrame, xkey: str, xlabel: str, marks: Mapping[str, PickMark] | None = None) -> Figure | None:
    """mIoU through the backend against a KD metric of the checkpoint (every device and backend)."""
    pts = _ok(df).dropna(subset=[xkey, "miou"])
    if pts.empty:
        return None
    fig = new_figure((9, 4.8))
    ax = fig.add_subplot()
    series = pts["backend"].astype(str) + "-" + pts["precision"].astype(str) + " @ " + pts["device"].astype(str)
    markers = _marker_map(list(series))
    for name, sub in pts.groupby(series):
        ax.scatter(sub[xkey], 100 * sub["miou"], marker=markers[name], s=50, label=name, zorder=3)
    picked = find_pick(pts, marks or {})
    for idx, mark in picked:
        draw_pick(ax, pts.at[idx, xkey], 100 * pts.at[idx, "miou"], mark, size=260,
                  label=f"{mark.legend_label()} @ {mark.device}")
    teacher = pts["teacher_miou"].dropna()
    if not teacher.empty:
        ax.axhline(100 * teacher.max(), color="#264653", ls=":", lw=1.2, label="teacher mIoU (PyTorch, KD metrics)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mIoU through the backend (%)")
    ax.set_title(f"accuracy vs {xlabel.split(' (')[0]}")
    ax.grid(alpha=0.3)
    ax.margins(x=0.08, y=0.12)
    figure_legend(fig, ax.get_legend_handles_labels()[0], "outside right upper", fontsize=7)
    freeze_limits(ax)
    picked_cells = {(pts.at[idx, "candidate"], pts.at[idx, xkey]): mark for idx, mark in picked}
    labels = []
    for _, r in pts.drop_duplicates(subset=["candidate", xkey]).iterrows():  # one label per checkpoint
        mark = picked_cells.get((r["candidate"], r[xkey]))
        labels.append(Label(r[xkey], 100 * r["miou"], f"{mark.word}: {r['candidate']}" if mark else str(r["candidate"]),
                            mark is not None))
    label_figure(fig, [(ax, sorted(labels, key=lambda lab: not lab.bold))])
    return fig


def plot_kd_curve(df: pd.DataFrame, xkey: str, xlabel: str, out_dir: Path,
                  marks: Mapping[str, PickMark] | None = None) -> Plot | None:
    """The KD-metric figure written as ``kd-miou-vs-<metric>.png``."""
    fig = kd_curve_figure(df, xkey, xlabel, marks)
    if fig is None:
        return None
    path = save(fig, out_dir / f"kd-miou-vs-{xkey.replace('_', '-')}.png")
    caption = (f"{xlabel} comes from the student checkpoint's KD metrics (computed in PyTorch at distillation "
               "time); mIoU is measured through each backend. Only distilled students carry these metrics.")
    return Plot(path, f"mIoU vs {xlabel}", caption)


def plot_latency(group: pd.DataFrame, device: str, out_dir: Path, mark: PickMark | None = None) -> Plot | None:
    """The latency figure (edgekd.compare.latency_plot) written as ``<device>-latency.png``."""
    from edgekd.compare.latency_plot import latency_figure

    fig = latency_figure(group, device, mark)
    if fig is None:
        return None
    path = save(fig, out_dir / f"{slug(device)}-latency.png")
    return Plot(path, f"{device}: latency per candidate", LATENCY_CAPTION)


def sustained_figure(group: pd.DataFrame, device: str, mark: PickMark | None = None) -> Figure | None:
    """FPS per window over a sustained run, one line per candidate that has one; the pick's line is bold."""
    pts = group[group["sustained_fps"].apply(lambda s: isinstance(s, list) and len(s) > 0)]
    if pts.empty:
        return None
    fig = new_figure((9, 4.5))
    ax = fig.add_subplot()
    sizes = sizes_vary(pts)
    for _, row in pts.iterrows():
        t, fps = zip(*row["sustained_fps"])
        name = row_label(row) + (f" {row['input']}" if sizes else "")
        is_pick = mark is not None and mark.is_row(row)
        line, = ax.plot(t, fps, marker=".", lw=2.6 if is_pick else 1.3,
                        label=f"{mark.word}: {name}" if is_pick else name)
        if is_pick:
            line.set_gid(PICK_GID)
    budget = budget_of(group)
    if budget:
        ax.axhline(budget["target_fps"], color="black", ls="--", lw=1.2, label=f"target {budget['target_fps']:g} FPS")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time since start of the sustained run (s)")
    ax.set_ylabel("FPS in the window")
    ax.set_title(f"{device}: sustained FPS")
    ax.grid(alpha=0.3)
    figure_legend(fig, ax.get_legend_handles_labels()[0], "outside right upper", fontsize=7)
    settle_layout(fig)
    return fig


def plot_sustained(group: pd.DataFrame, device: str, out_dir: Path, mark: PickMark | None = None) -> Plot | None:
    """The sustained-FPS figure written as ``<device>-sustained-fps.png``."""
    fig = sustained_figure(group, device, mark)
    if fig is None:
        return None
    path = save(fig, out_dir / f"{slug(device)}-sustained-fps.png")
    caption = ("FPS per measurement window during the sustained run; a falling line means throttling or contention. "
               "The bold line is the pick's.")
    return Plot(path, f"{device}: sustained FPS", caption)


def render_plots(df: pd.DataFrame, out_dir: str | Path) -> tuple[list[Plot], list[str]]:
    """Every plot the table supports, and a sentence for each plot that could not be drawn."""
    out_dir = Path(out_dir)
    plots: list[Plot] = []
    skipped: list[str] = []
    ok = _ok(df)
    marks = pick_marks(df) if not df.empty else {}
    for device, group in (ok.groupby("device", dropna=False) if not ok.empty else []):
        mark = marks.get(str(device))
        for fn, what in ((plot_accuracy_vs_fps, "mIoU vs FPS (no row has both mIoU and FPS)"),
                         (plot_latency, "latency distribution (no row has p50/p90/p99)"),
                         (plot_sustained, None)):
            plot = fn(group, str(device), out_dir, mark)
            if plot:
                plots.append(plot)
            elif what:
                skipped.append(f"{device}: no {what}")
        from edgekd.compare.curve import plot_resolution_curves

        curve = plot_resolution_curves(group, str(device), out_dir, df.attrs.get("reference_curve"), mark)
        if curve:
            plots.append(curve)
    for key, label in (("distillation_factor", "distillation factor P_t/P_s"),
                       ("relative_error", "relative error E_s/E_t")):
        plot = plot_kd_curve(df, key, label, out_dir, marks)
        if plot:
            plots.append(plot)
        else:
            skipped.append(f"no mIoU vs {label}: no measured row carries the checkpoint's KD metrics")
    return plots, skipped


def make_plots(df: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Write the PNGs into ``out_dir`` and return their paths."""
    return [p.path for p in render_plots(df, out_dir)[0]]

