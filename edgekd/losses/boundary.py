"""Boundary-aware distillation: weight KD separately near class boundaries and in the interior.

Thin structures and object edges are where a small student loses most of its mIoU, and the
per-pixel KD average is dominated by large easy interiors. Splitting the average gives the
boundary band its own weight.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.losses._utils import (
    check_positive,
    check_same_shape,
    full_precision,
    masked_mean,
    pixel_kl,
    upcast,
    valid_mask,
)
from edgekd.errors import EdgekdError

BAND_SOURCES = ("labels", "teacher")


def boundary_band(class_map: torch.Tensor, width: int, valid: torch.Tensor | None = None) -> torch.Tensor:
    """Boolean N×H×W mask of valid pixels within ``width`` px (Chebyshev distance) of a class
    change, from an N×H×W integer class map.

    A pixel is in the band when the (2·width+1)² window around it holds two different valid
    classes: a max-pool and a min-pool (max-pool of the negated map) of the class map disagree.
    Invalid pixels (``valid`` False, e.g. the ignore label) take part in neither pool — they are
    replaced by −1 for the max and +inf for the min — so the edge of a void region is not a
    class boundary, and they are never in the band themselves.
    """
    if width < 0:
        raise EdgekdError(f"boundary band width={width!r} must be >= 0 pixels")
    if valid is None:
        valid = torch.ones_like(class_map, dtype=torch.bool)
    if width == 0:
        return torch.zeros_like(valid)
    cls = class_map.to(torch.float32).unsqueeze(1)
    ok = valid.unsqueeze(1)
    k = 2 * width + 1
    high = F.max_pool2d(torch.where(ok, cls, torch.full_like(cls, -1.0)), k, stride=1, padding=width)
    low = -F.max_pool2d(torch.where(ok, -cls, torch.full_like(cls, -float("inf"))), k, stride=1, padding=width)
    return (high != low).squeeze(1) & valid


class BoundaryKDLoss(nn.Module):
    """Boundary-aware KD after BPKD (Liu et al. 2023, "BPKD: Boundary Privileged Knowledge
    Distillation for Semantic Segmentation") and boundary-aware KD (BA-KD): separate
    pixel-wise KD terms on the boundary band B and on the body (interior) I = V \\ B,

        KD_X = τ² · (1/|X|) Σ_{i∈X} KL(softmax(z^t_i/τ) ‖ softmax(z^s_i/τ))
        L    = w_band · KD_B + w_body · KD_I

    B holds the valid pixels within ``width`` px of a class change (see ``boundary_band``) of
    the label map (``band_from='labels'``) or of the teacher's argmax map
    (``band_from='teacher'``, usable without labels); V is the set of non-ignored pixels. Each
    term is averaged over its own pixels, so a thin band weighs as much as the large interior.
    An empty band or body contributes 0.
    """

    uses_labels = True

    def __init__(
        self,
        width: int = 3,
        band_weight: float = 1.0,
        body_weight: float = 1.0,
        tau: float = 1.0,
        band_from: str = "labels",
        ignore_index: int = 255,
    ) -> None:
        super().__init__()
        if int(width) != width or width < 1:
            raise EdgekdError(f"bkd: width={width!r} must be an integer >= 1 pixel")
        if band_from not in BAND_SOURCES:
            raise EdgekdError(f"bkd: band_from={band_from!r} is not one of {', '.join(BAND_SOURCES)}")
        self.width = int(width)
        self.band_weight = float(band_weight)
        self.body_weight = float(body_weight)
        self.tau = check_positive(tau, "tau", "bkd")
        self.band_from = band_from
        self.ignore_index = int(ignore_index)

    def regions(
        self, teacher_logits: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(band, body) boolean N×H×W masks for this batch."""
        valid = valid_mask(labels, teacher_logits, self.ignore_index, "bkd")
        if valid is None:
            if self.band_from == "labels":
                raise EdgekdError("bkd: band_from='labels' needs labels; pass labels or use bkd(band_from=teacher)")
            valid = torch.ones_like(teacher_logits[:, 0], dtype=torch.bool)
        source = labels if self.band_from == "labels" else teacher_logits.detach().argmax(dim=1)
        band = boundary_band(source, self.width, valid)
        return band, valid & ~band

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_same_shape(student_logits, teacher_logits, "bkd")
        band, body = self.regions(teacher_logits, labels)
        with full_precision(student_logits.device):
            kl = pixel_kl(upcast(student_logits), upcast(teacher_logits.detach()), self.tau)
            scale = self.tau**2
            return scale * (self.band_weight * masked_mean(kl, band) + self.body_weight * masked_mean(kl, body))
