"""What a dataset holds and whether it is sound: the library side of ``edgekd data inspect``."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.data.folder import dataset_splits, open_dataset
from edgekd.data.info import DataError


def split_counts(root: Path, layout: str = "auto") -> dict[str, int | str]:
    """Items per split; a split that cannot be listed maps to its error message."""
    counts: dict[str, int | str] = {}
    for split in dataset_splits(root, layout=layout):
        try:
            counts[split] = len(open_dataset(root, split, layout=layout).pairs)
        except DataError as err:
            counts[split] = f"error: {err}"
    return counts


def summarize_dataset(root: str | Path, split: str | None = None, *, max_items: int | None = None,
                      layout: str = "auto") -> dict[str, Any]:
    """Layout, classes, split sizes, image sizes, class pixel frequencies and every problem found.

    Reads each item of ``split`` (default ``train`` if present, else ``all``), or the first
    ``max_items``: decoding is the only way to catch unreadable files, size mismatches and
    stray labels. Opening errors (missing folders, unpaired images, bad dataset.yaml) raise
    ``DataError``; per-item problems are collected under ``problems``.
    """
    root = Path(root).expanduser()
    splits = dataset_splits(root, layout=layout)
    split = split or ("train" if "train" in splits else "all")
    ds = open_dataset(root, split, layout=layout)
    info = ds.info
    count = len(ds) if max_items is None else min(max_items, len(ds))
    sizes: Counter[str] = Counter()
    hist = np.zeros(256, np.int64)
    problems: list[str] = []
    for i in range(count):
        try:
            image, mask = ds.read_pair(i)
        except DataError as err:
            problems.append(str(err))
            continue
        sizes[f"{image.shape[0]}x{image.shape[1]}"] += 1
        hist += np.bincount(mask.ravel(), minlength=256)
    total = max(int(hist.sum()), 1)
    return {
        **info.to_dict(),
        "split": split,
        "splits": split_counts(root, layout),
        "num_items": len(ds),
        "checked_items": count,
        "split_hash": ds.split_hash(),
        "image_sizes": dict(sizes.most_common()),
        "class_frequency": {name: float(hist[c]) / total for c, name in enumerate(info.class_names)},
        "ignore_fraction": float(hist[info.ignore_index]) / total,
        "absent_classes": [name for c, name in enumerate(info.class_names) if hist[c] == 0],
        "problems": problems,
    }


def format_summary(s: dict[str, Any]) -> str:
    """The human-readable report printed by ``edgekd data inspect``."""
    splits = "  ".join(f"{k} {v if isinstance(v, int) else '(broken)'}" for k, v in s["splits"].items())
    sizes = ", ".join(f"{k} ×{v}" for k, v in s["image_sizes"].items()) or "none readable"
    lines = [
        f"dataset   {s['name']}  ({s['layout']} layout)  {s['root']}",
        f"classes   {s['num_classes']}: {', '.join(s['class_names'])}  (ignore index {s['ignore_index']})",
        f"splits    {splits}",
        f"split     {s['split']}: {s['num_items']} items, split hash {s['split_hash'][:16]}",
        f"sizes     {sizes}",
        f"class pixel frequency over {s['checked_items']} item(s):",
    ]
    width = max(len(n) for n in [*s["class_names"], "(ignore)"])
    for name, frac in [*s["class_frequency"].items(), ("(ignore)", s["ignore_fraction"])]:
        lines.append(f"  {name:<{width}}  {100 * frac:6.2f}%  {'█' * round(40 * frac)}")
    if s["absent_classes"]:
        lines.append(f"absent    {', '.join(s['absent_classes'])} (no pixels in the checked items)")
    lines.append(f"problems  {len(s['problems']) or 'none'}")
    lines.extend(f"  {p}" for p in s["problems"][:20])
    if len(s["problems"]) > 20:
        lines.append(f"  ... and {len(s['problems']) - 20} more")
    return "\n".join(lines)
