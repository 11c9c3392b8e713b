"""Relation-based distillation: the student imitates how the teacher relates pixels to pixels.

Relations are cosine similarities between L2-normalised pixel embeddings, so student and
teacher channel counts may differ without an adapter. The student map is first resized to the
teacher's spatial size (explicit ``resize``), then both are pooled so that the P×P relation
matrices stay affordable: memory grows with the square of the pooled pixel count.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.losses._utils import check_positive, check_resize_mode, full_precision, resize_spatial, upcast
from edgekd.errors import EdgekdError


def _aligned(student: torch.Tensor, teacher: torch.Tensor, mode: str, what: str) -> torch.Tensor:
    if student.shape[0] != teacher.shape[0]:
        raise EdgekdError(f"{what}: batch sizes differ (student {student.shape[0]}, teacher {teacher.shape[0]})")
    return resize_spatial(student, teacher.shape[-2:], mode, what)


def _embeddings(feat: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×C×P with every pixel's C-vector scaled to unit length."""
    return F.normalize(feat.flatten(2), p=2, dim=1)


class PairwiseAffinityLoss(nn.Module):
    """Pair-wise distillation of SKD (Liu et al. 2019, "Structured Knowledge Distillation for
    Semantic Segmentation", CVPR).

    Features are max-pooled into nodes, a_ij = f_iᵀ f_j / (‖f_i‖ ‖f_j‖) over the P nodes of an
    image, and

        L = (1 / (N·P²)) · Σ_n Σ_i Σ_j (a^s_ij − a^t_ij)²

    Pooling follows the authors' code: a kernel of ``pool_scale`` × the (teacher) map size,
    stride = kernel, ceil mode — the default 0.5 gives 2×2 nodes, capturing global structure.
    Give ``pool_kernel`` (pixels) instead for a fixed kernel; CIRKD's re-implementation uses 2.
    """

    uses_labels = False

    def __init__(self, pool_scale: float | None = 0.5, pool_kernel: int | None = None, resize: str = "bilinear") -> None:
        super().__init__()
        if pool_kernel is not None:
            pool_scale = None
            if int(pool_kernel) != pool_kernel or pool_kernel < 1:
                raise EdgekdError(f"skd: pool_kernel={pool_kernel!r} must be an integer >= 1 (1 = no pooling)")
        elif pool_scale is None or not 0 < pool_scale <= 1:
            raise EdgekdError(f"skd: pool_scale={pool_scale!r} must be in (0, 1], or give pool_kernel")
        self.pool_scale = pool_scale
        self.pool_kernel = None if pool_kernel is None else int(pool_kernel)
        self.resize = check_resize_mode(resize, "skd")

    def kernel_for(self, height: int, width: int) -> tuple[int, int]:
        if self.pool_kernel is not None:
            return self.pool_kernel, self.pool_kernel
        return max(1, int(height * self.pool_scale)), max(1, int(width * self.pool_scale))

    def forward(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        s = _aligned(student_feat, teacher_feat, self.resize, "skd")
        with full_precision(s.device):
            s, t = upcast(s), upcast(teacher_feat.detach())
            kernel = self.kernel_for(*t.shape[-2:])
            s = F.max_pool2d(s, kernel, stride=kernel, ceil_mode=True)
            t = F.max_pool2d(t, kernel, stride=kernel, ceil_mode=True)
            e_s, e_t = _embeddings(s), _embeddings(t)
            a_s = torch.bmm(e_s.transpose(1, 2), e_s)
            a_t = torch.bmm(e_t.transpose(1, 2), e_t)
            return (a_s - a_t).pow(2).mean()


class CrossImageRelationLoss(nn.Module):
    """Mini-batch pixel-to-pixel relation of CIRKD (Yang et al. 2022, "Cross-Image Relational
    Knowledge Distillation for Semantic Segmentation", CVPR).

    Embeddings are average-pooled (``pool_kernel``; 1 = none) and L2-normalised. For every
    ordered image pair (i, j) of the batch, S_ij = E_iᵀ E_j is the P×P similarity of image i's
    pixels to image j's pixels; each row becomes a distribution with a temperature, and

        L = (1 / (N²·P)) · Σ_i Σ_j Σ_p KL( softmax(S^t_ij[p,:] / τ) ‖ softmax(S^s_ij[p,:] / τ) )

    (the authors' per-pair ``batchmean`` KL averaged over the N² pairs; no τ² factor, as in
    their code). Default τ = 0.1 as in their training script. All pairs are computed in one
    batched product — memory ~ N²·P² floats, hence the pooling.
    """

    uses_labels = False

    def __init__(self, tau: float = 0.1, pool_kernel: int = 2, resize: str = "bilinear") -> None:
        super().__init__()
        self.tau = check_positive(tau, "tau", "cirkd")
        if int(pool_kernel) != pool_kernel or pool_kernel < 1:
            raise EdgekdError(f"cirkd: pool_kernel={pool_kernel!r} must be an integer >= 1 (1 = no pooling)")
        self.pool_kernel = int(pool_kernel)
        self.resize = check_resize_mode(resize, "cirkd")

    def _relation_logp(self, feat: torch.Tensor) -> torch.Tensor:
        if self.pool_kernel > 1:
            k = self.pool_kernel
            feat = F.avg_pool2d(feat, k, stride=k, ceil_mode=True)
        e = _embeddings(feat)
        sim = torch.einsum("icp,jcq->ijpq", e, e)
        return F.log_softmax(sim / self.tau, dim=-1)

    def forward(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        s = _aligned(student_feat, teacher_feat, self.resize, "cirkd")
        with full_precision(s.device):
            log_s = self._relation_logp(upcast(s))
            log_t = self._relation_logp(upcast(teacher_feat.detach()))
            kl = (log_t.exp() * (log_t - log_s)).sum(dim=-1)
            return kl.mean()
