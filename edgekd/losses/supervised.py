"""Supervised terms: the ground-truth cross-entropy that every distillation run keeps, its
class-balanced weights and its online-hard-example-mining (OHEM) variant."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgekd.losses._utils import full_precision, upcast, valid_mask
from edgekd.errors import EdgekdError

CLASS_WEIGHT_METHODS = ("enet", "median")


def _check_weights(class_weights: Sequence[float] | None, what: str) -> torch.Tensor | None:
    if class_weights is None:
        return None
    weights = torch.as_tensor(list(class_weights), dtype=torch.float32)
    if weights.dim() != 1 or bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise EdgekdError(f"{what}: class_weights {list(class_weights)!r} must be a flat list of finite values >= 0")
    return weights


def _check_weight_count(weights: torch.Tensor | None, classes: int, what: str) -> None:
    if weights is not None and weights.numel() != classes:
        raise EdgekdError(f"{what}: {weights.numel()} class weights for {classes} classes; give one weight per class")


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy with an ignore label and optional class weights.

        L = Σ_{i∈V} w_{y_i} · (−log softmax(z_i)_{y_i}) / Σ_{i∈V} w_{y_i}

    over the non-ignored pixels V (w ≡ 1 without class weights) — the same value as
    ``torch.nn.functional.cross_entropy(..., ignore_index=…)`` with mean reduction, except that
    a batch with no valid pixel gives 0 instead of NaN (one fully void crop must not poison the
    run). Class-balanced weights come from the training labels (``class_weights_from_counts``).
    """

    uses_labels = True

    def __init__(self, ignore_index: int = 255, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.ignore_index = int(ignore_index)
        self.register_buffer("class_weights", _check_weights(class_weights, "ce"))

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = valid_mask(labels, student_logits, self.ignore_index, "ce")
        _check_weight_count(self.class_weights, student_logits.shape[1], "ce")
        with full_precision(student_logits.device):
            logits = upcast(student_logits)
            weight = None if self.class_weights is None else self.class_weights.to(logits.dtype)
            total = F.cross_entropy(logits, labels.long(), weight=weight, ignore_index=self.ignore_index, reduction="sum")
            safe = torch.where(valid, labels.long(), torch.zeros_like(labels.long()))
            per_pixel = valid.to(logits.dtype) if weight is None else weight[safe] * valid.to(logits.dtype)
            return total / per_pixel.sum().clamp_min(torch.finfo(logits.dtype).tiny)


class OHEMCrossEntropyLoss(nn.Module):
    """Cross-entropy on the hard pixels only: online hard example mining (Shrivastava et al.
    2016, "Training Region-based Object Detectors with Online Hard Example Mining", CVPR; the
    pixel form of Zhao et al. 2017, PSPNet, and of mmsegmentation's ``OHEMPixelSampler``).

        p_i = softmax(z_i)_{y_i}                    (true-class probability, i ∈ V)
        K   = {i ∈ V : p_i < thresh}, or the min(min_kept, |V|) pixels of smallest p_i
              when fewer than min_kept pass the threshold
        L   = Σ_{i∈K} w_{y_i} · (−log p_i) / Σ_{i∈K} w_{y_i}

    over the non-ignored pixels V of the whole batch (w ≡ 1 without class weights). Easy,
    already-confident pixels (the floor and wall of most frames) stop dominating the mean, so
    the thin classes (poles, signs) get the gradient. The selection carries no gradient; a batch
    with no valid pixel gives 0.
    """

    uses_labels = True

    def __init__(
        self, thresh: float = 0.7, min_kept: int = 10000, ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(thresh, bool) or not isinstance(thresh, (int, float)) or not 0 < thresh <= 1:
            raise EdgekdError(f"ohem: thresh={thresh!r} must be a probability in (0, 1], e.g. ohem(thresh=0.7)")
        if isinstance(min_kept, bool) or not isinstance(min_kept, int) or min_kept < 0:
            raise EdgekdError(f"ohem: min_kept={min_kept!r} must be a whole number of pixels >= 0, e.g. ohem(min_kept=10000)")
        self.thresh = float(thresh)
        self.min_kept = int(min_kept)
        self.ignore_index = int(ignore_index)
        self.register_buffer("class_weights", _check_weights(class_weights, "ohem"))

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        valid = valid_mask(labels, student_logits, self.ignore_index, "ohem").reshape(-1)
        _check_weight_count(self.class_weights, student_logits.shape[1], "ohem")
        with full_precision(student_logits.device):
            logits = upcast(student_logits)
            target = labels.long().reshape(-1)[valid]
            log_p = F.log_softmax(logits, dim=1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])[valid]
            nll = -log_p.gather(1, target[:, None])[:, 0]
            if nll.numel() == 0:
                return logits.sum() * 0.0
            keep = self._hard(nll.detach())
            weight = torch.ones_like(nll) if self.class_weights is None else self.class_weights.to(nll.dtype)[target]
            weight = weight * keep.to(nll.dtype)
            return (weight * nll).sum() / weight.sum().clamp_min(torch.finfo(nll.dtype).tiny)

    def _hard(self, nll: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the kept pixels (p < thresh, topped up to min_kept by smallest p)."""
        keep = torch.exp(-nll) < self.thresh
        wanted = min(self.min_kept, nll.numel())
        if int(keep.sum()) < wanted:
            keep = torch.zeros_like(keep)
            keep[torch.topk(nll, wanted).indices] = True  # largest −log p = smallest p
        return keep


def class_weights_from_counts(
    pixel_counts: Sequence[float], image_counts_pixels: Sequence[float] | None = None, method: str = "enet",
) -> list[float]:
    """Class weights from the training labels' pixel counts, computed once per training split.

    * ``enet`` (Paszke et al. 2016, "ENet: A Deep Neural Network Architecture for Real-Time
      Semantic Segmentation"): w_c = 1 / ln(1.02 + p_c), p_c = n_c / Σ_k n_k, the share of the
      valid pixels labelled c. Bounded in (0, 1/ln 1.02 ≈ 50.5]; a class never seen gets 50.5.
    * ``median`` (Eigen & Fergus 2015, "Predicting Depth, Surface Normals and Semantic Labels
      with a Common Multi-Scale Convolutional Architecture"): f_c = n_c / P_c with P_c the total
      pixel count of the images where c appears (``image_counts_pixels``), w_c = median_k(f_k) / f_c
      over the classes that appear; a class that never appears gets weight 0 (it has no pixel
      to weight).
    """
    counts = np.asarray(pixel_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise EdgekdError(f"class weights: pixel counts {list(pixel_counts)!r} must be >= 0 with at least one labelled pixel")
    if method == "enet":
        return [float(w) for w in 1.0 / np.log(1.02 + counts / counts.sum())]
    if method == "median":
        if image_counts_pixels is None or len(image_counts_pixels) != counts.size:
            raise EdgekdError("class weights 'median' need, per class, the pixel count of the images where the class appears")
        present = np.asarray(image_counts_pixels, dtype=np.float64)
        seen = counts > 0
        freq = np.where(seen, counts / np.where(present > 0, present, 1.0), 0.0)
        median = float(np.median(freq[seen]))
        return [float(median / f) if s else 0.0 for f, s in zip(freq, seen)]
    raise EdgekdError(f"class weights {method!r} is not one of {', '.join(CLASS_WEIGHT_METHODS)} (e.g. --class-weights enet)")
