"""Metrics that judge a distillation run (not training losses): how closely the student
follows its teacher, and what the compression bought.

* ``teacher_student_kl``: mean per-pixel KL(p_t ‖ p_s) at T = 1 — 0 when the student
  reproduces the teacher's probabilities.
* ``probability_correlation``: Pearson r between the two probability maps, over all
  (pixel, class) values — 1 for identical maps.
* ``relative_error``: E_s / E_t with E = 1 − mIoU — how many times more errors the student
  makes (1.0 = as good as the teacher).
* ``distillation_factor``: P_t / P_s — how many times smaller the student is.

``KDAgreement`` accumulates the first two over a validation set, batch by batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.losses._utils import pixel_kl, valid_mask
from edgekd.errors import EdgekdError


class KDAgreement:
    """Running teacher‖student KL and probability correlation over many batches.

    Sums are kept in float64. The Pearson sums are centred on 1/C, which is *exactly* the mean
    of any probability map over classes, so no second pass and no catastrophic cancellation.
    """

    def __init__(self, ignore_index: int = 255) -> None:
        self.ignore_index = ignore_index
        self.kl_sum = 0.0
        self.pixels = 0
        self.sxy = self.sxx = self.syy = 0.0

    @torch.no_grad()
    def update(
        self, teacher_logits: torch.Tensor, student_logits: torch.Tensor, labels: torch.Tensor | None = None
    ) -> None:
        if teacher_logits.shape != student_logits.shape:
            raise EdgekdError(
                f"kd metrics: teacher logits {tuple(teacher_logits.shape)} and student logits "
                f"{tuple(student_logits.shape)} must have the same shape (resize the teacher's first)"
            )
        t, s = teacher_logits.double(), student_logits.double()
        mask = valid_mask(labels, s, self.ignore_index, "kd metrics")
        if mask is None:
            mask = torch.ones_like(s[:, 0], dtype=torch.bool)
        self.kl_sum += float(pixel_kl(s, t, 1.0)[mask].sum())
        self.pixels += int(mask.sum())
        centre = 1.0 / t.shape[1]
        keep = mask.unsqueeze(1)
        x = torch.where(keep, F.softmax(t, dim=1) - centre, 0.0)
        y = torch.where(keep, F.softmax(s, dim=1) - centre, 0.0)
        self.sxy += float((x * y).sum())
        self.sxx += float((x * x).sum())
        self.syy += float((y * y).sum())

    def kl(self) -> float:
        """Mean per-pixel KL(p_t ‖ p_s); NaN before any valid pixel was seen."""
        return self.kl_sum / self.pixels if self.pixels else math.nan

    def pearson(self) -> float:
        """Pearson r of the probability maps; NaN when either map is constant (e.g. uniform)."""
        denom = math.sqrt(self.sxx * self.syy)
        return self.sxy / denom if denom > 0 else math.nan

    def compute(self) -> dict[str, float]:
        return {"kl": self.kl(), "pearson": self.pearson(), "pixels": float(self.pixels)}


def teacher_student_kl(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> float:
    """Mean per-pixel KL(softmax(z_t) ‖ softmax(z_s)) over non-ignored pixels (T = 1)."""
    acc = KDAgreement(ignore_index)
    acc.update(teacher_logits, student_logits, labels)
    return acc.kl()


def probability_correlation(
    teacher_logits: torch.Tensor,
    student_logits: torch.Tensor,
    labels: torch.Tensor | None = None,
    ignore_index: int = 255,
) -> float:
    """Pearson r between softmax(z_t) and softmax(z_s) over all (non-ignored pixel, class) values."""
    acc = KDAgreement(ignore_index)
    acc.update(teacher_logits, student_logits, labels)
    return acc.pearson()


def _check_miou(value: float, who: str) -> float:
    if not 0.0 <= value <= 1.0:
        hint = f" (pass fractions: {value / 100:.4f}, not percent)" if 1.0 < value <= 100.0 else ""
        raise EdgekdError(f"{who} mIoU {value!r} must be a fraction in [0, 1]{hint}")
    return float(value)


def relative_error(student_miou: float, teacher_miou: float) -> float:
    """E_s / E_t with E = 1 − mIoU (mIoUs as fractions in [0, 1])."""
    e_s = 1.0 - _check_miou(student_miou, "student")
    e_t = 1.0 - _check_miou(teacher_miou, "teacher")
    if e_t == 0.0:
        raise EdgekdError("teacher mIoU is 1.0 (no error): the relative error E_s/E_t is undefined")
    return e_s / e_t


def distillation_factor(teacher_params: int, student_params: int) -> float:
    """P_t / P_s: how many times fewer parameters the student has."""
    if teacher_params <= 0 or student_params <= 0:
        raise EdgekdError(
            f"parameter counts must be positive (teacher {teacher_params!r}, student {student_params!r})"
        )
    return teacher_params / student_params


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of a model (trainable or not), for ``distillation_factor``."""
    return sum(p.numel() for p in module.parameters())
