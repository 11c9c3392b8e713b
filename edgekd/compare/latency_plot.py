"""The latency figure: one row per candidate, its recorded percentiles drawn as bars and glyphs.

The records carry percentiles, not raw samples, so the figure draws what they hold — thin line
min–max, dark bar p50–p90, light bar p90–p99, dot p50, × mean — and a legend in the figure says
which glyph is which (a PNG lifted out of the report loses its caption). The pick's row is ringed
at its p50, shaded and its name set in bold.
"""
from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from edgekd.compare.figures import budget_of, figure_legend, new_figure, sizes_vary
from edgekd.compare.labels import settle_layout
from edgekd.compare.marks import PickMark, draw_pick
from edgekd.compare.select import row_label

RANGE, P90, P99, PICK_BAND = "#555555", "#2a6f97", "#a9cce3", "#fff1b8"


def _glyphs(pts: pd.DataFrame) -> list:
    """Legend handles for the glyphs this figure draws (min–max and × mean only when some row has them)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    if (pts["latency_min_ms"].notna() & pts["latency_max_ms"].notna()).any():
        handles.append(Line2D([], [], color=RANGE, lw=0.8, label="min–max"))
    handles += [Patch(color=P90, label="p50–p90"), Patch(color=P99, label="p90–p99"),
                Line2D([], [], ls="", marker="o", color="white", mec="black", ms=5, label="p50")]
    if pts["latency_mean_ms"].notna().any():
        handles.append(Line2D([], [], ls="", marker="x", color="black", ms=5, label="mean"))
    return handles


def _draw_row(ax, y: int, r: pd.Series) -> None:
    lo, hi = r["latency_min_ms"], r["latency_max_ms"]
    if pd.notna(lo) and pd.notna(hi):
        ax.plot([lo, hi], [y, y], color=RANGE, lw=0.8, zorder=1)
    ax.barh(y, r["latency_p90_ms"] - r["latency_p50_ms"], left=r["latency_p50_ms"], height=0.5, color=P90, zorder=2)
    ax.barh(y, r["latency_p99_ms"] - r["latency_p90_ms"], left=r["latency_p90_ms"], height=0.5, color=P99, zorder=2)
    ax.plot(r["latency_p50_ms"], y, "o", color="white", mec="black", ms=5, zorder=3)
    if pd.notna(r["latency_mean_ms"]):
        ax.plot(r["latency_mean_ms"], y, "x", color="black", ms=5, zorder=3)


def latency_figure(group: pd.DataFrame, device: str, mark: PickMark | None = None) -> Figure | None:
    """Per-candidate latency distribution from min/p50/p90/p99/max/mean, with the latency budget and the pick."""
    pts = group.dropna(subset=["latency_p50_ms", "latency_p90_ms", "latency_p99_ms"]).sort_values("latency_p50_ms")
    if pts.empty:
        return None
    fig = new_figure((8.5, 1.9 + 0.36 * len(pts)))
    ax = fig.add_subplot()
    sizes, names, picked = sizes_vary(pts), [], None
    for y, (_, r) in enumerate(pts.iterrows()):
        _draw_row(ax, y, r)
        name = row_label(r) + (f" {r['input']}" if sizes else "")
        if mark is not None and mark.is_row(r):
            picked, name = y, f"{mark.word}: {name}"
            ax.axhspan(y - 0.42, y + 0.42, color=PICK_BAND, zorder=0)
            draw_pick(ax, r["latency_p50_ms"], y, mark, size=170)
        names.append(name)
    ax.set_yticks(range(len(pts)), names, fontsize=8)
    if picked is not None:
        ax.get_yticklabels()[picked].set_fontweight("bold")
    budget = budget_of(group)
    if budget:
        ax.axvline(budget["latency_budget_ms"], color="#e76f51", lw=1.5,
                   label=f"latency budget {budget['latency_budget_ms']:g} ms")
    ax.set_xlim(left=0)
    ax.set_ylim(-0.7, len(pts) - 0.3)
    ax.set_xlabel("latency per frame (ms), synchronous single stream")
    ax.set_title(f"{device}: latency distribution per candidate")
    ax.grid(axis="x", alpha=0.3)
    handles = _glyphs(pts) + ax.get_legend_handles_labels()[0]
    figure_legend(fig, handles, "outside lower center", ncol=min(4, len(handles)))
    settle_layout(fig)
    return fig
