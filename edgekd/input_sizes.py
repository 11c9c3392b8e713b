"""Input-size lists: ``"360x480,270x360,240x320"`` → ``[(360, 480), (270, 360), (240, 320)]``.

The resolution curve (docs/resolution_curve.md) runs one model at several input sizes; export,
eval and bench take the sizes as one comma-separated list. Ground floor: imports only the error
type, so every layer can use it.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from edgekd.errors import EdgekdError

_HW = re.compile(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*")


def format_size(size: tuple[int, int] | list[int]) -> str:
    """(H, W) → ``"HxW"``."""
    return f"{int(size[0])}x{int(size[1])}"


def _one(item: Any, text: str) -> tuple[int, int]:
    if isinstance(item, str):
        match = _HW.fullmatch(item)
        if not match:
            where = f" (in {text!r})" if text.strip() != item.strip() else ""
            raise EdgekdError(f"input size {item!r} must be HxW in pixels, height first{where}: e.g. 360x480, "
                              "or 360x480,240x320 for several")
        h, w = int(match.group(1)), int(match.group(2))
    elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in item):
        h, w = int(item[0]), int(item[1])
    else:
        raise EdgekdError(f"input size {item!r} must be 'HxW' or a pair (H, W) of ints")
    if h < 1 or w < 1:
        raise EdgekdError(f"input size {h}x{w} must be positive in both dimensions")
    return h, w


def parse_input_sizes(value: str | Iterable[Any] | tuple[int, int] | None) -> list[tuple[int, int]]:
    """Validated, ordered (H, W) pairs; ``None`` → ``[]`` (the caller's default size).

    Accepts ``"HxW[,HxW...]"``, one (H, W) pair, or an iterable of strings/pairs. An empty item
    (``"360x480,,240x320"``) and a size given twice are errors, never silently dropped: a
    duplicate would make two artifacts (or two eval lines) claim the same point of the curve.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text, items = value, value.split(",")
        if any(not i.strip() for i in items):
            raise EdgekdError(f"input size list {value!r} has an empty entry; separate sizes with single commas, "
                              "e.g. 360x480,240x320")
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        text, items = format_size(value), [tuple(value)]
    else:
        items = list(value)
        text = ",".join(i if isinstance(i, str) else format_size(i) for i in items) if items else ""
    sizes = [_one(i, text) for i in items]
    if not sizes:
        raise EdgekdError("no input size given; pass HxW[,HxW...], e.g. --input-size 360x480,240x320")
    seen: set[tuple[int, int]] = set()
    for size in sizes:
        if size in seen:
            raise EdgekdError(f"input size {format_size(size)} appears twice in {text!r}; give each size once")
        seen.add(size)
    return sizes
