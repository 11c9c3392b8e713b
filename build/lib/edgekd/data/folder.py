"""``SegDataset`` and ``open_dataset``: image/label folders as a torch Dataset.

Layouts (``layout="auto"`` picks the one ``dataset.yaml`` names, else the one the folders show):

camvid
    ``train/ trainannot/ val/ valannot/ test/ testannot/``: a mask has its image's stem (any
    lossless extension). Splits: each present pair of folders, ``trainval`` (train + val) and
    ``all``. Defaults: CamVid's 11 classes (Sky ... Bicyclist), ignore index 11 (void).
folder
    ``images/`` and ``masks/`` (subfolders allowed; ``masks/a/b.png`` belongs to
    ``images/a/b.jpg``). A list file ``<split>.txt`` beside them (``train.txt``, ``val.txt``,
    any name) names that split's images, one per line, as a stem or a path relative to
    ``images/`` (extension optional; blank lines and ``#`` comments skipped); its order is kept.
    Split ``all`` is every image, sorted by path. Without list files only ``all`` exists: asking
    for ``train`` then fails instead of silently training and evaluating on the same images.
    Class names come from ``dataset.yaml`` or the ``class_names`` argument (there is no
    default); the ignore index defaults to 255.

``dataset.yaml`` (optional, ``yaml.safe_load``, unknown keys are errors): ``name``,
``class_names``, ``ignore_index``, ``layout``, ``description``. Arguments beat the file, the
file beats the layout's defaults.

Opening is cheap (file listing and pairing only); every item is checked when it is loaded
(readable, same size as its mask, labels in ``0..num_classes-1`` or the ignore index), and
``SegDataset.validate()`` runs those checks over the whole split up front. Items are
``(image, mask)``: a uint8 3×H×W RGB tensor and an int64 H×W tensor. Normalisation is the
model's job (each model carries its own ``Normalization``), so images stay 0..255 here.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from edgekd.data.info import DataError, DatasetInfo, read_dataset_yaml, resolve_info
from edgekd.data.io import read_image, read_mask
from edgekd.data.layouts import Pair, available_splits, detect_layout, list_pairs

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


class SegDataset(Dataset):
    """(image, mask) pairs of one split; ``transform`` works on numpy HWC image + HW mask."""

    def __init__(self, info: DatasetInfo, split: str, pairs: Sequence[Pair], transform: Transform | None = None) -> None:
        self.info = info
        self.split = split
        self.pairs: list[Pair] = list(pairs)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"SegDataset({self.info.name!r}, split={self.split!r}, items={len(self)}, classes={self.info.num_classes})"

    def read_pair(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The checked, untransformed pair as numpy: RGB uint8 H×W×3 and uint8 H×W."""
        image_path, mask_path = self.pairs[index]
        image, mask = read_image(image_path), read_mask(mask_path)
        if image.shape[:2] != mask.shape:
            raise DataError(
                f"mask {mask_path} is {mask.shape[0]}x{mask.shape[1]} but image {image_path} is "
                f"{image.shape[0]}x{image.shape[1]} (HxW); the mask must have its image's size"
            )
        check_labels(mask, self.info, mask_path)
        return image, mask

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.read_pair(index)
        if self.transform is not None:
            image, mask = self.transform(image, mask)
        return to_tensors(image, mask)

    def validate(self, max_items: int | None = None) -> int:
        """Check every item (or the first ``max_items``); raise one DataError summarising all problems.

        Returns the number of items checked. The error's message is the first problem plus a
        count of the others, so the CLI can print it on one line.
        """
        count = len(self) if max_items is None else min(max_items, len(self))
        problems = self.find_problems(range(count))
        if problems:
            more = f" (and {len(problems) - 1} more problem(s) in split {self.split!r})" if len(problems) > 1 else ""
            raise DataError(problems[0] + more)
        return count

    def find_problems(self, indices: Sequence[int] | range) -> list[str]:
        """Messages of every item among ``indices`` that fails its checks."""
        problems = []
        for i in indices:
            try:
                self.read_pair(i)
            except DataError as err:
                problems.append(str(err))
        return problems

    def split_hash(self) -> str:
        """sha256 hex over the sorted relative names and byte sizes of every file of the split.

        Cheap (no file is read) and stable across machines, so a checkpoint can record which data
        it was trained on; it changes when a file is added, removed, renamed or resized.
        """
        digest = hashlib.sha256()
        root = self.info.root
        for image, mask in sorted(self.pairs):
            for path in (image, mask):
                rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
                digest.update(f"{rel}\t{path.stat().st_size}\n".encode())
        return digest.hexdigest()


def check_labels(mask: np.ndarray, info: DatasetInfo, mask_path: Path) -> None:
    """Every label must be a class index or the ignore index."""
    if int(mask.max(initial=0)) < info.num_classes:
        return
    values = np.unique(mask)
    bad = [int(v) for v in values if v >= info.num_classes and v != info.ignore_index]
    if bad:
        shown = bad[:8] + (["..."] if len(bad) > 8 else [])
        raise DataError(
            f"mask {mask_path} has label value(s) {shown} outside classes 0..{info.num_classes - 1} "
            f"and ignore index {info.ignore_index}; fix the mask, or set class_names / ignore_index "
            f"(e.g. in {info.root / 'dataset.yaml'}) to match the labels"
        )


def to_tensors(image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """HWC uint8 RGB + HW labels -> (uint8 3×H×W, int64 H×W)."""
    image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    mask_t = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.int64))
    return image_t, mask_t


def open_dataset(
    root: str | Path,
    split: str = "train",
    *,
    transform: Transform | None = None,
    layout: str = "auto",
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
) -> SegDataset:
    """Open one split of a CamVid-layout or folder-layout dataset (see ``edgekd.data.layouts``).

    ``class_names`` and ``ignore_index`` override ``dataset.yaml``, which overrides the layout's
    defaults (CamVid: its 11 classes and void label 11; folder: ignore 255, names required).
    """
    root = Path(root).expanduser().resolve()
    doc = read_dataset_yaml(root) if root.is_dir() else {}
    layout_found = detect_layout(root, layout, doc.get("layout"))  # raises if root is missing
    info = resolve_info(root, layout_found, doc, class_names=class_names, ignore_index=ignore_index)
    return SegDataset(info, split, list_pairs(root, layout_found, split), transform)


def dataset_splits(root: str | Path, *, layout: str = "auto") -> list[str]:
    """The split names a dataset folder offers (``all`` is always among them)."""
    root = Path(root).expanduser()
    doc = read_dataset_yaml(root) if root.is_dir() else {}
    return available_splits(root, detect_layout(root, layout, doc.get("layout")))
