"""Evaluate a model on a dataset split: mIoU, per-class IoU, pixel accuracy, boundary F-score."""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.metrics import BoundaryFScore, ConfusionMatrix, check_class_count
from edgekd.models.base import Normalization

BOUNDARY_TOLERANCE_PX = 2


@torch.inference_mode()
def predict(model: nn.Module, normalization: Normalization, images: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Class map N×H×W for a uint8 RGB batch; ``size`` resizes the input, logits return to the image size."""
    x = normalization.apply(images)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    logits = model(x)
    if logits.shape[-2:] != images.shape[-2:]:
        logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
    return logits.argmax(1)


def evaluate_model(
    model: nn.Module, normalization: Normalization, dataset, *, input_size: tuple[int, int] | None = None,
    max_images: int | None = None, device: str | torch.device = "cpu", progress=None, name: str | None = None,
    shard: tuple[int, int] = (0, 1), reduce_sum: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, Any]:
    """Accuracy of ``model`` on ``dataset`` (items: uint8 3×H×W image, int64 H×W mask).

    A model of another class count than the dataset's is refused (``check_class_count``) before
    any image is scored; ``name`` (e.g. the checkpoint path) is how the refusal names the model.

    Denormal floats are flushed to zero while evaluating (x86 arithmetic on them is ~20× slower;
    outputs change by < 1e-4) and the result says so.

    ``shard=(rank, world)`` scores images rank, rank+world, ... only; ``reduce_sum`` then sums the
    confusion matrix and boundary counts over the ranks (an all_reduce), so every rank returns the
    metrics of all ``n`` images, exactly as one process would.
    """
    info = dataset.info
    model_classes = getattr(model, "num_classes", None)
    if model_classes is not None:
        check_class_count(model_classes, info.num_classes, info.ignore_index, model=name or type(model).__name__,
                          dataset=f"{info.name} ({info.root})")
    confusion = ConfusionMatrix(info.num_classes, info.ignore_index)
    boundary = BoundaryFScore(info.ignore_index, BOUNDARY_TOLERANCE_PX)
    n = len(dataset) if max_images is None else min(len(dataset), max_images)
    was_training = model.training
    model.eval().to(device)
    flushed = torch.set_flush_denormal(True)
    rank, world = shard
    task = progress.add_task("eval", total=n) if progress else None
    t0 = time.perf_counter_ns()
    try:
        for i in range(rank, n, world):
            image, mask = dataset[i]
            pred = predict(model, normalization, image.unsqueeze(0).to(device), input_size)[0].cpu()
            confusion.update(pred, mask)
            boundary.update(pred.numpy(), mask.numpy())
            if progress:
                progress.update(task, advance=1)
    finally:
        torch.set_flush_denormal(False)
        model.train(was_training)
    if reduce_sum is not None:
        _reduce(confusion, boundary, reduce_sum)
    seconds = (time.perf_counter_ns() - t0) / 1e9
    per_class = confusion.per_class_iou()
    return {
        "miou": confusion.miou(),
        "per_class_iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(info.class_names, per_class)},
        "pixel_accuracy": confusion.pixel_accuracy(),
        "boundary_f": boundary.f_score(),
        "boundary_tolerance_px": BOUNDARY_TOLERANCE_PX,
        "images": n,
        "images_per_s": n / seconds if seconds > 0 else float("nan"),
        "eval_seconds": seconds,
        "input_size": list(input_size) if input_size else "native",
        "flush_denormal": flushed,
    }


def _reduce(confusion: ConfusionMatrix, boundary: BoundaryFScore, reduce_sum) -> None:
    """Sum the per-rank counts in place: the metrics below are then those of every rank's images."""
    confusion.matrix = reduce_sum(confusion.matrix)
    counts = reduce_sum(np.array([boundary.hits_pred, boundary.total_pred, boundary.hits_true, boundary.total_true], np.int64))
    boundary.hits_pred, boundary.total_pred, boundary.hits_true, boundary.total_true = (int(c) for c in counts)
