"""Teacher-logit cache: compute a frozen teacher's logits once per image, reuse them every epoch.

Stored as one float16 memory-mapped array (N×C×H×W) per (teacher sha256, dataset split hash,
image size, teacher test-time augmentation) with a JSON index of image paths, so several
students distilled from the same teacher share it. Valid only when the teacher is frozen and only its logits are used; feature
losses need the live teacher.

Writers never expose a half-written cache: the array is written under a per-process temporary
name and renamed, and ``index.json`` (written last, atomically) is the completeness marker: it
records the array's byte size, and a reader trusts the array only when both agree. Under torchrun
the first process of each node builds, the others wait on a barrier and open it (``build=False``).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgekd.checkpoint import atomic_write
from edgekd.errors import EdgekdError
from edgekd.training.teacher_tta import TeacherTTA, tta_logits


def default_cache_dir() -> Path:
    return Path(os.environ.get("EDGEKD_CACHE", Path.home() / ".cache" / "edgekd")) / "teacher_logits"


@dataclass
class TeacherCache:
    path: Path
    logits: np.memmap  # N×C×H×W float16
    build_seconds: float
    built: bool = True  # False: a complete cache from an earlier run was opened as it was

    def describe(self) -> dict:
        """Where the cache lives and whether this run paid for it: the distill summary prints this, since the
        training time alone hides a build that can take longer than the training."""
        return {"path": str(self.path), "built": self.built, "build_seconds": self.build_seconds if self.built else 0.0}

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.logits[indices.numpy()], dtype=np.float32))


def cache_key(
    teacher_sha: str, split_hash: str, size: tuple[int, int], num_classes: int, tta: TeacherTTA | None = None
) -> str:
    """Folder name of one cache; the plain teacher keeps the key it had before TTA existed."""
    key = f"{teacher_sha[:16]}-{split_hash[:16]}-{size[0]}x{size[1]}-c{num_classes}"
    return key if tta is None else f"{key}-tta-{tta.tag}"


@torch.inference_mode()
def build_or_open_cache(
    teacher: nn.Module, normalization, dataset, *, teacher_sha: str, cache_dir: Path | None = None, progress=None,
    tta: TeacherTTA | None = None, build: bool = True,
) -> TeacherCache:
    """Open the cache for (teacher, dataset, tta) or compute it. ``dataset`` yields same-size images;
    with ``tta`` the cached logits are the teacher's averaged over flip/scales (``teacher_tta``).
    ``build=False`` (torchrun ranks that waited for the builder) only opens a complete cache."""
    image0, _ = dataset[0]
    size = tuple(image0.shape[-2:])
    key = cache_key(teacher_sha, dataset.split_hash(), size, teacher.num_classes, tta)
    root = (cache_dir or default_cache_dir()) / key
    data_file = root / "logits.f16"
    index_file = root / "index.json"
    shape = (len(dataset), teacher.num_classes, *size)
    if _complete(index_file, data_file, shape):
        return TeacherCache(root, np.memmap(data_file, np.float16, "r", shape=shape), 0.0, built=False)
    if not build:
        raise EdgekdError(f"teacher cache {root} is missing or incomplete after its builder finished; "
                          "give every node its own --cache-dir or a shared one, then rerun")
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tmp = data_file.with_suffix(f".tmp-{os.getpid()}")  # two trainers building the same cache must not share it
    array = np.memmap(tmp, np.float16, "w+", shape=shape)
    teacher.eval()
    torch.set_flush_denormal(True)
    task = progress.add_task("teacher logits → cache", total=len(dataset)) if progress else None
    try:
        for i in range(len(dataset)):
            image, _ = dataset[i]
            if tuple(image.shape[-2:]) != size:
                raise ValueError(f"teacher cache needs same-size images: item {i} is {tuple(image.shape[-2:])}, item 0 {size}")
            array[i] = tta_logits(teacher, normalization.apply(image[None]), tta)[0].numpy().astype(np.float16)
            if progress:
                progress.update(task, advance=1)
        array.flush()
        del array
        os.replace(tmp, data_file)
    finally:
        torch.set_flush_denormal(False)
        if tmp.exists():
            tmp.unlink()
    index = {"shape": list(shape), "bytes": int(np.prod(shape)) * 2, "complete": True, "teacher_sha256": teacher_sha, "tta": None if tta is None else tta.to_dict(),
             "images": [str(p[0]) for p in dataset.pairs]}
    atomic_write(index_file, lambda t: Path(t).write_text(json.dumps(index)))
    return TeacherCache(root, np.memmap(data_file, np.float16, "r", shape=shape), time.perf_counter() - t0)


def _complete(index_file: Path, data_file: Path, shape: tuple) -> bool:
    """True when the marker says the array of ``shape`` is complete and the file has its size."""
    if not index_file.is_file() or not data_file.is_file():
        return False
    index = json.loads(index_file.read_text())
    if index.get("shape") != list(shape):
        return False
    expected = index.get("bytes", int(np.prod(shape)) * 2)  # caches written before the marker: size check only
    return data_file.stat().st_size == expected and index.get("complete", True)
