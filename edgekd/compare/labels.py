"""Point labels that neither overlap each other nor run off the axes: a small greedy placement.

Each label tries a fixed list of offsets around its point (near ones first, then farther ones,
which get a thin leader line) and keeps the one with the least overlap — measured in display
pixels with the renderer's own text extents — with the labels already placed, the data markers
and the outside of the axes. Deterministic (same rows, same picture) and a few dozen extents per
label; no iterative solver and no extra dependency (adjustText would do the same job with one
more package for one function).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

GID = "point-label"  # every placed label carries it, so tests and callers can find them in ax.texts
RADII = (5, 12, 22, 34, 48, 64)  # offsets tried, in points from the point
ANGLES = (35, -35, 145, -145, 90, -90, 0, 180, 65, -65, 115, -115)  # degrees, in this order at each radius
LEADER_FROM = 12  # from this radius on, a leader line joins the label to its point
PAD_PX = 2.0  # labels keep this far apart
OUTSIDE_WEIGHT = 50.0  # a pixel off the axes costs this many pixels of overlap with another label
MARKER_WEIGHT = 0.5  # covering a data marker is less bad than covering another label
LINE_WEIGHT = 12.0  # per sample of a drawn line under the label (samples every LINE_STEP_PX pixels)
LINE_STEP_PX = 3.0


@dataclass(frozen=True)
class Label:
    """One label to place: its text at data point (x, y); ``bold`` for the pick."""

    x: float
    y: float
    text: str
    bold: bool = False


def settle_layout(fig):
    """Run the figure's layout once and freeze it, so the pixels measured now are the pixels saved.

    Labels are placed in display coordinates; a constrained layout that moved the axes after the
    placement would shift labels onto one another."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    return canvas.get_renderer()


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box: Bbox, frame: Bbox) -> float:
    return box.width * box.height - _overlap(box, frame)


def _offsets():
    for r in RADII:
        for deg in ANGLES:
            c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
            ha = "left" if c > 0.1 else "right" if c < -0.1 else "center"
            va = "bottom" if s > 0.1 else "top" if s < -0.1 else "center"
            yield r, (r * c, r * s), ha, va


def _marker_boxes(ax, labels: list[Label], marker_px: float) -> list[Bbox]:
    half = marker_px / 2
    return [Bbox.from_extents(px - half, py - half, px + half, py + half)
            for px, py in ax.transData.transform([(lab.x, lab.y) for lab in labels])]


def _line_samples(ax) -> np.ndarray:
    """Display points every LINE_STEP_PX along the axes' drawn lines (curves, the front, budget lines)."""
    chunks = [np.empty((0, 2))]
    for line in ax.lines:
        if line.get_linestyle() in ("None", "none", "", " ") or len(line.get_xydata()) < 2:
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        for a, b in zip(xy[:-1], xy[1:]):
            n = max(2, int(np.hypot(*(b - a)) / LINE_STEP_PX) + 1)
            chunks.append(a + np.linspace(0, 1, n)[:, None] * (b - a))
    return np.concatenate(chunks)


def _count_inside(samples: np.ndarray, box: Bbox) -> int:
    x, y = samples[:, 0], samples[:, 1]
    return int(((x >= box.x0) & (x <= box.x1) & (y >= box.y0) & (y <= box.y1)).sum())


def _leader(ha: str, va: str) -> dict:
    """A thin line from the label's corner nearest its point (not from its centre, through the text)."""
    rel = ({"left": 0.0, "right": 1.0}.get(ha, 0.5), {"bottom": 0.0, "top": 1.0}.get(va, 0.5))
    return {"arrowstyle": "-", "color": "#777777", "lw": 0.5, "shrinkA": 1, "shrinkB": 3, "relpos": rel}


def _text_box(ann: Annotation, renderer) -> Bbox:
    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer).padded(PAD_PX)


def place_labels(ax, labels: list[Label], renderer, *, fontsize: float = 7, marker_pt: float = 8) -> list[Annotation]:
    """Annotate each label at its best offset, in the order given (put the most important first).

    Call after ``settle_layout`` and after the axes limits are final."""
    frame = ax.get_window_extent(renderer)
    markers = _marker_boxes(ax, labels, marker_pt * renderer.points_to_pixels(1.0))
    lines = _line_samples(ax)
    placed: list[Bbox] = []
    out = []
    for lab in labels:
        probe = ax.annotate(lab.text, (lab.x, lab.y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize,
                            fontweight="bold" if lab.bold else "normal")
        best = None
        for radius, offset, ha, va in _offsets():
            probe.xyann = offset
            probe.set(ha=ha, va=va)
            box = _text_box(probe, renderer)
            cost = (sum(_overlap(box, p) for p in placed) + OUTSIDE_WEIGHT * _outside(box, frame)
                    + MARKER_WEIGHT * sum(_overlap(box, m) for m in markers) + LINE_WEIGHT * _count_inside(lines, box))
            if best is None or cost < best[0]:
                best = (cost, radius, offset, ha, va, box)
            if cost == 0:
                break
        probe.remove()
        _, radius, offset, ha, va, box = best
        leader = _leader(ha, va) if radius >= LEADER_FROM else None
        ann = ax.annotate(lab.text, (lab.x, lab.y), xytext=offset, textcoords="offset points", fontsize=fontsize,
                          fontweight="bold" if lab.bold else "normal", ha=ha, va=va, arrowprops=leader, zorder=6)
        ann.set_gid(GID)
        placed.append(box)
        out.append(ann)
    return out


def label_boxes(ax, renderer) -> list[Bbox]:
    """The text boxes (without leader lines) of the labels ``place_labels`` put on ``ax``."""
    boxes = []
    for text in ax.texts:
        if text.get_gid() == GID:
            text.update_positions(renderer)
            boxes.append(Text.get_window_extent(text, renderer))
    return boxes
