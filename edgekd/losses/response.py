"""Response-based distillation: the student imitates the teacher's per-pixel class scores."""
from __future__ import annotations

import torch
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


class PixelKDLoss(nn.Module):
    """Pixel-wise KD (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network",
    applied to every pixel as in Liu et al. 2019, "Structured Knowledge Distillation for
    Semantic Segmentation").

        L = τ² · (1/|V|) Σ_{i∈V} Σ_c p_t(c|i) · (log p_t(c|i) − log p_s(c|i)),
        p(·|i) = softmax(z_i / τ) over classes,

    where V is the set of pixels whose label is not ``ignore_index`` (every pixel when no
    labels are given). The τ² factor keeps gradient magnitudes comparable across
    temperatures. Inputs: N×C×H×W student and teacher logits of the same shape; the teacher is
    treated as a constant (detached).
    """

    uses_labels = True

    def __init__(self, tau: float = 1.0, ignore_index: int = 255) -> None:
        super().__init__()
        self.tau = check_positive(tau, "tau", "kd")
        self.ignore_index = int(ignore_index)

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_same_shape(student_logits, teacher_logits, "kd")
        mask = valid_mask(labels, student_logits, self.ignore_index, "kd")
        with full_precision(student_logits.device):
            s, t = upcast(student_logits), upcast(teacher_logits.detach())
            kl = pixel_kl(s, t, self.tau)
            return self.tau**2 * masked_mean(kl, mask)


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation of matching rows of two R×K matrices (cosine of centred rows)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


class DISTLoss(nn.Module):
    """DIST (Huang et al. 2022, "Knowledge Distillation from A Stronger Teacher", NeurIPS).

    Every pixel is a sample: the probability maps Y = softmax(z/τ) are flattened to a P×C
    matrix over the P non-ignored pixels of the whole batch (as the authors' segmentation code
    flattens N·H·W), then

        L_inter = 1 − (1/P) Σ_i ρ(Y_s[i, :], Y_t[i, :])    (relation over classes, per pixel)
        L_intra = 1 − (1/C) Σ_c ρ(Y_s[:, c], Y_t[:, c])    (relation over pixels, per class)
        L = τ² · (β · L_inter + γ · L_intra)

    with ρ the Pearson correlation (ε = 1e-8 in the denominator, as in the reference code).
    Matching correlations rather than exact probabilities lets the student keep its own
    scale, which the paper shows helps when the teacher is much stronger. Defaults
    β = γ = τ = 1 are the paper's standard setting.
    """

    uses_labels = True

    def __init__(
        self, beta: float = 1.0, gamma: float = 1.0, tau: float = 1.0, ignore_index: int = 255
    ) -> None:
        super().__init__()
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.tau = check_positive(tau, "tau", "dist")
        self.ignore_index = int(ignore_index)

    def forward(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_same_shape(student_logits, teacher_logits, "dist")
        mask = valid_mask(labels, student_logits, self.ignore_index, "dist")
        with full_precision(student_logits.device):
            s, t = upcast(student_logits), upcast(teacher_logits.detach())
            classes = s.shape[1]
            y_s = torch.softmax(s / self.tau, dim=1).permute(0, 2, 3, 1).reshape(-1, classes)
            y_t = torch.softmax(t / self.tau, dim=1).permute(0, 2, 3, 1).reshape(-1, classes)
            if mask is not None:
                keep = mask.reshape(-1)
                y_s, y_t = y_s[keep], y_t[keep]
            if y_s.shape[0] == 0:
                return s.sum() * 0.0
            inter = 1.0 - pearson_rows(y_s, y_t).mean()
            intra = 1.0 - pearson_rows(y_s.t(), y_t.t()).mean()
            return self.tau**2 * (self.beta * inter + self.gamma * intra)
