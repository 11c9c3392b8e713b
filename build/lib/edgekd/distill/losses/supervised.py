"""Supervised term: the ground-truth cross-entropy that every distillation run keeps."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.distill.losses._utils import full_precision, upcast, valid_mask
from edgekd.errors import EdgekdError


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy with an ignore label and optional class weights.

        L = Σ_{i∈V} w_{y_i} · (−log softmax(z_i)_{y_i}) / Σ_{i∈V} w_{y_i}

    over the non-ignored pixels V (w ≡ 1 without class weights) — the same value as
    ``torch.nn.functional.cross_entropy(..., ignore_index=…)`` with mean reduction, except that
    a batch with no valid pixel gives 0 instead of NaN (one fully void crop must not poison the
    run).
    """

    uses_labels = True

    def __init__(self, ignore_index: int = 255, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(list(class_weights), dtype=torch.float32)
            if weights.dim() != 1 or bool((weights < 0).any()):
                raise EdgekdError(f"ce: class_weights {list(class_weights)!r} must be a flat list of values >= 0")
        self.register_buffer("class_weights", weights)

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = valid_mask(labels, student_logits, self.ignore_index, "ce")
        if self.class_weights is not None and self.class_weights.numel() != student_logits.shape[1]:
            raise EdgekdError(
                f"ce: {self.class_weights.numel()} class weights for {student_logits.shape[1]} classes; "
                "give one weight per class"
            )
        with full_precision(student_logits.device):
            logits = upcast(student_logits)
            weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
            total = F.cross_entropy(logits, labels.long(), weight=weight, ignore_index=self.ignore_index, reduction="sum")
            safe = torch.where(valid, labels.long(), torch.zeros_like(labels.long()))
            per_pixel = valid.to(logits.dtype) if weight is None else weight[safe] * valid.to(logits.dtype)
            return total / per_pixel.sum().clamp_min(torch.finfo(logits.dtype).tiny)
