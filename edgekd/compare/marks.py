"""The pick in the plots: which row ``compare`` picks for each device, and the ring that marks it.

The plots show the same decision ``edgekd compare --pick`` prints (``pick_per_device``), so a
reader of a PNG sees which point was chosen without the terminal text. When no candidate meets a
device's budget there is no pick; the closest candidate is then ringed in grey and called
"closest", never "pick".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from edgekd.compare.select import pick_per_device, row_label

GID = "pick"  # the ring's gid, so tests and callers can find it among the axes' artists
RING = {"pick": "#111111", "closest": "#8d99ae"}
IDENTITY = ("candidate", "backend", "precision", "input")


@dataclass(frozen=True)
class PickMark:
    """The picked row of one device (``met``), or its closest candidate when none meets the budget."""

    device: str
    row: Mapping[str, Any]
    met: bool

    @property
    def word(self) -> str:
        return "pick" if self.met else "closest"

    def name(self, with_input: bool = True) -> str:
        size = self.row.get("input") if with_input else None
        return row_label(self.row) + (f" {size}" if size else "")

    def legend_label(self) -> str:
        miss = "" if self.met else " (no candidate meets the budget)"
        return f"{self.word}: {self.name()}{miss}"

    def is_row(self, row: Mapping[str, Any]) -> bool:
        """True for the picked row itself (same cell key; without one, same candidate/backend/precision/input)."""
        mine, theirs = self.row.get("cell_key"), row.get("cell_key")
        if isinstance(mine, str) and isinstance(theirs, str):
            return mine == theirs and self.row.get("device") == row.get("device")
        return all(str(self.row.get(k)) == str(row.get(k)) for k in IDENTITY + ("device",))


def pick_marks(df: pd.DataFrame) -> dict[str, PickMark]:
    """The mark for every device whose rows recorded a budget, by device name."""
    marks = {}
    for device, pick in pick_per_device(df, skip_without_budget=True).items():
        if pick.chosen is not None:
            marks[device] = PickMark(device, pick.chosen, True)
        elif pick.closest is not None:
            marks[device] = PickMark(device, pick.closest, False)
    return marks


def find_pick(rows: pd.DataFrame, marks: Mapping[str, PickMark]) -> list[tuple[Any, PickMark]]:
    """(index, mark) of every row of ``rows`` that is a device's pick."""
    found = []
    for idx, row in rows.iterrows():
        mark = marks.get(str(row.get("device")))
        if mark is not None and mark.is_row(row):
            found.append((idx, mark))
    return found


def legend_handlers(handles: list) -> dict:
    """A legend-sized ring for the pick (its plotted ring is big enough to circle a marker)."""
    from matplotlib.collections import PathCollection
    from matplotlib.legend_handler import HandlerPathCollection

    return {h: HandlerPathCollection(sizes=[110]) for h in handles if isinstance(h, PathCollection) and h.get_gid() == GID}


def draw_pick(ax, x: float, y: float, mark: PickMark, *, size: float = 330, label: str | None = None):
    """A thick ring round the point at (x, y), labelled for the legend."""
    ring = ax.scatter([x], [y], s=size, facecolors="none", edgecolors=RING[mark.word], linewidths=2.2, zorder=5,
                      label=mark.legend_label() if label is None else label)
    ring.set_gid(GID)
    return ring
