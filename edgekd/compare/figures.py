"""What every compare figure shares: the written-plot record, the figure factory, saving, names.

Figures are ``matplotlib.figure.Figure`` objects (no ``pyplot``, so no global figure state or GUI
backend) with a constrained layout, saved with a tight bounding box: tick labels, titles and
legends outside the axes stay inside the PNG.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

DPI = 110


@dataclass(frozen=True)
class Plot:
    """One written PNG and the words that go under it in a report."""

    path: Path
    title: str
    caption: str


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A figure whose layout keeps tick labels, titles and outside legends inside the canvas."""
    return Figure(figsize=figsize, dpi=DPI, layout="constrained")


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(text))


def budget_of(group: pd.DataFrame) -> dict[str, float] | None:
    """The real-time budget the rows recorded (the latest), or None."""
    budgets = [b for b in group["budget"] if isinstance(b, dict)]
    return budgets[-1] if budgets else None


def sizes_vary(rows: pd.DataFrame) -> bool:
    """Whether the rows hold more than one input size (then labels must say which)."""
    return "input" in rows and rows["input"].nunique() > 1


def freeze_limits(ax) -> None:
    """Fix the axes limits where autoscaling put them, before labels are placed in pixels."""
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())


def figure_legend(fig: Figure, handles: list, loc: str, *, fontsize: float = 8, ncol: int = 1):
    """A legend outside the axes (it never hides a point or a label), the pick's ring drawn legend-sized."""
    from edgekd.compare.marks import legend_handlers

    return fig.legend(handles=handles, loc=loc, fontsize=fontsize, ncol=ncol, handler_map=legend_handlers(handles))
