"""Point labels that neither overlap each other nor run off the axes: a small greedy placement.

Each label tries a fixed list of offsets around its point (near ones first, then farther ones,
which get a thin leader line). An offset is clean when the label's box — its size measured once
with the renderer's own text extent, then moved to each offset in display pixels — overlaps no
label already placed and stays inside the axes. Among clean offsets the one covering the fewest
data markers and line pixels (and whose leader crosses the fewest labels) wins; a label with no
clean offset is left out, and counted, rather than drawn over another. Deterministic (same rows,
same picture); no iterative solver and no extra dependency (adjustText would do the same job with
one more package for one function).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from matplotlib import rcParams
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

GID = "point-label"  # every placed label carries it, so tests and callers can find them in ax.texts
RADII = (5, 12, 22, 34, 48, 64)  # offsets tried, in points from the point
ANGLES = (35, -35, 145, -145, 90, -90, 0, 180, 65, -65, 115, -115)  # degrees, in this order at each radius
LEADER_FROM = 12  # from this radius on, a leader line joins the label to its point
PAD_PX = 2.0  # labels keep this far apart
MARKER_WEIGHT = 0.5  # per pixel² of a data marker under the label
LINE_WEIGHT = 12.0  # per sample of a drawn line under the label, or of a leader through a placed label
LINE_STEP_PX = 3.0  # lines are sampled this often


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


def _offsets():
    """(radius, (dx, dy) in points, ha, va): the text sits on the far side of its anchor from the point."""
    for r in RADII:
        for deg in ANGLES:
            c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
            ha = "left" if c > 0.1 else "right" if c < -0.1 else "center"
            va = "bottom" if s > 0.1 else "top" if s < -0.1 else "center"
            yield r, (r * c, r * s), ha, va


ALIGN = {"left": 0.0, "bottom": 0.0, "center": 0.5, "right": 1.0, "top": 1.0}  # anchor's place along the box


def _segment(a, b) -> np.ndarray:
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = max(2, int(np.hypot(*(b - a)) / LINE_STEP_PX) + 1)
    return a + np.linspace(0, 1, n)[:, None] * (b - a)


def _line_samples(ax) -> np.ndarray:
    """Display points every LINE_STEP_PX along the axes' drawn lines (curves, the front, budget lines)."""
    chunks = [np.empty((0, 2))]
    for line in ax.lines:
        if line.get_linestyle() in ("None", "none", "", " ") or len(line.get_xydata()) < 2:
            continue
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), float))
        chunks += [_segment(a, b) for a, b in zip(xy[:-1], xy[1:])]
    return np.concatenate(chunks)


def _inside(samples: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Which (x, y) samples lie in box (x0, y0, x1, y1)."""
    x, y = samples[:, 0], samples[:, 1]
    return (x >= box[0]) & (x <= box[2]) & (y >= box[1]) & (y <= box[3])


@dataclass
class _Scene:
    """What a new label must keep clear of, in display pixels; boxes are rows (x0, y0, x1, y1)."""

    frame: np.ndarray
    markers: np.ndarray
    lines: np.ndarray  # samples along drawn lines, and along the leaders placed so far
    placed: np.ndarray = field(default_factory=lambda: np.empty((0, 4)))

    def cost(self, box: np.ndarray, leader: np.ndarray | None) -> float | None:
        """None when the box leaves the axes or overlaps a placed label; else how much it covers."""
        f, p = self.frame, self.placed
        if box[0] < f[0] or box[1] < f[1] or box[2] > f[2] or box[3] > f[3]:
            return None
        if ((p[:, 0] < box[2]) & (box[0] < p[:, 2]) & (p[:, 1] < box[3]) & (box[1] < p[:, 3])).any():
            return None
        m = self.markers
        w = np.clip(np.minimum(m[:, 2], box[2]) - np.maximum(m[:, 0], box[0]), 0, None)
        h = np.clip(np.minimum(m[:, 3], box[3]) - np.maximum(m[:, 1], box[1]), 0, None)
        cost = MARKER_WEIGHT * float((w * h).sum()) + LINE_WEIGHT * int(_inside(self.lines, box).sum())
        if leader is not None:
            cost += LINE_WEIGHT * sum(int(_inside(leader, q).sum()) for q in p)
        return cost

    def add(self, box: np.ndarray, leader: np.ndarray | None) -> None:
        self.placed = np.vstack([self.placed, box])
        if leader is not None:
            self.lines = np.concatenate([self.lines, leader])


def _best_offset(point: np.ndarray, size: tuple[float, float], pt_px: float, scene: _Scene) -> tuple | None:
    """(offset, ha, va, leader) of the least-covering clean offset for a text box of ``size`` pixels
    (padded) at display ``point``, or None when every offset overlaps a placed label or leaves the axes."""
    (w, h), best = size, None
    for radius, (dx, dy), ha, va in _offsets():
        ax_, ay_ = point[0] + dx * pt_px, point[1] + dy * pt_px  # the text's anchor
        x0, y0 = ax_ - ALIGN[ha] * w, ay_ - ALIGN[va] * h
        box = np.array([x0, y0, x0 + w, y0 + h])
        leader = _segment(point, (ax_, ay_)) if radius >= LEADER_FROM else None
        cost = scene.cost(box, leader)
        if cost is not None and (best is None or cost < best[0]):
            best = (cost, (dx, dy), ha, va, leader, box)
        if cost == 0:
            break
    return None if best is None else best[1:]


def _leader(ha: str, va: str) -> dict:
    """A thin line from the label's corner nearest its point (not from its centre, through the text)."""
    return {"arrowstyle": "-", "color": "#777777", "lw": 0.5, "shrinkA": 1, "shrinkB": 3, "relpos": (ALIGN[ha], ALIGN[va])}


def _marker_boxes(ax, pt_px: float) -> np.ndarray:
    """(x0, y0, x1, y1) of every scatter marker on the axes (rings included), from its size in points²."""
    boxes = [np.empty((0, 4))]
    for coll in ax.collections:
        offsets, sizes = coll.get_offsets(), coll.get_sizes()
        if len(offsets) == 0 or len(sizes) == 0:
            continue
        xy = coll.get_offset_transform().transform(np.asarray(offsets, float))
        half = np.resize(np.sqrt(sizes) * pt_px / 2, len(xy))[:, None]
        boxes.append(np.hstack([xy - half, xy + half]))
    return np.concatenate(boxes)


def place_labels(ax, labels: list[Label], renderer, *, fontsize: float = 7) -> list[Annotation]:
    """Annotate each label at its best clean offset, in the order given (put the most important first).

    A label with no clean offset (every one overlaps a placed label or leaves the axes) is left
    out rather than drawn over another (``label_figure`` says how many). Call after
    ``settle_layout`` and after the axes limits are final."""
    pt_px = renderer.points_to_pixels(1.0)
    points = ax.transData.transform([(lab.x, lab.y) for lab in labels]) if labels else np.empty((0, 2))
    frame = ax.get_window_extent(renderer)
    scene = _Scene(np.array([frame.x0, frame.y0, frame.x1, frame.y1]), _marker_boxes(ax, pt_px), _line_samples(ax))
    out = []
    for lab, point in zip(labels, points):
        weight = "bold" if lab.bold else "normal"
        ann = ax.annotate(lab.text, (lab.x, lab.y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize,
                          fontweight=weight, zorder=6)
        ann.update_positions(renderer)
        extent = Text.get_window_extent(ann, renderer)
        best = _best_offset(point, (extent.width + 2 * PAD_PX, extent.height + 2 * PAD_PX), pt_px, scene)
        ann.remove()
        if best is None:
            continue
        offset, ha, va, leader, box = best
        ann = ax.annotate(lab.text, (lab.x, lab.y), xytext=offset, textcoords="offset points", fontsize=fontsize,
                          fontweight=weight, ha=ha, va=va, arrowprops=_leader(ha, va) if leader is not None else None,
                          zorder=6)
        ann.set_gid(GID)
        scene.add(box, leader)
        out.append(ann)
    return out


def omitted_note(placed: int, wanted: int) -> str:
    """The words that say labels were left out ('' when none was)."""
    return "" if placed >= wanted else f"({wanted - placed} of {wanted} point labels left out: they would overlap)"


def label_figure(fig, per_axes: list[tuple[object, list[Label]]]) -> int:
    """Lay the figure out and place each axes' labels; returns how many were left out.

    When some are, a second line under that axes' title says how many: the layout runs again to
    make room for it (the axes shrink a little), and the labels are placed again."""
    def place() -> list[tuple[object, list[Label], list[Annotation]]]:
        renderer = settle_layout(fig)
        return [(ax, labels, place_labels(ax, labels, renderer)) for ax, labels in per_axes]

    done = place()
    if all(len(placed) == len(labels) for _, labels, placed in done):
        return 0
    titles = {ax: ax.get_title() for ax, _ in per_axes}
    for ax, labels, placed in done:
        for ann in placed:
            ann.remove()
        if len(placed) < len(labels):
            ax.set_title(f"{titles[ax]}\n{omitted_note(len(placed), len(labels))}", fontsize=10)
    fig.set_layout_engine("constrained")
    done = place()
    for ax, labels, placed in done:  # the counts of the second pass, the one drawn
        note = omitted_note(len(placed), len(labels))
        ax.set_title(f"{titles[ax]}\n{note}" if note else titles[ax], fontsize=10 if note else rcParams["axes.titlesize"])
    return sum(len(labels) - len(placed) for _, labels, placed in done)


def label_boxes(ax, renderer) -> list[Bbox]:
    """The text boxes (without leader lines) of the labels ``place_labels`` put on ``ax``."""
    boxes = []
    for text in ax.texts:
        if text.get_gid() == GID:
            text.update_positions(renderer)
            boxes.append(Text.get_window_extent(text, renderer))
    return boxes
