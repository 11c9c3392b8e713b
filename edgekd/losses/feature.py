"""Feature-based distillation: the student imitates intermediate feature maps of the teacher.

Student and teacher maps often differ in channels and stride. Channels are bridged by a
learnable 1×1 convolution (an *adapter*, trained together with the student); spatial sizes
are bridged by an explicit resize of the student map to the teacher's size, chosen with
``resize`` ('bilinear' default, 'nearest', 'area', or 'none' to refuse mismatched sizes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgekd.losses._utils import (
    check_positive,
    check_resize_mode,
    check_same_shape,
    full_precision,
    resize_spatial,
    upcast,
)
from edgekd.errors import EdgekdError


def _check_channels(student_channels: int, teacher_channels: int, what: str) -> None:
    for name, value in (("student_channels", student_channels), ("teacher_channels", teacher_channels)):
        if not isinstance(value, int) or value <= 0:
            raise EdgekdError(f"{what}: {name}={value!r} must be a positive channel count")


def adapt_and_resize(
    student: torch.Tensor, adapter: nn.Module, size: tuple[int, int], mode: str, what: str
) -> torch.Tensor:
    """Apply a 1×1 adapter and resize to ``size``, on whichever side has fewer pixels.

    A 1×1 convolution and a resize whose weights sum to one (bilinear, nearest, area) commute,
    so the order changes only the cost, never the result (up to rounding).
    """
    if student.shape[-2] * student.shape[-1] > size[0] * size[1]:
        return adapter(resize_spatial(student, size, mode, what))
    return resize_spatial(adapter(student), size, mode, what)


class FitNetLoss(nn.Module):
    """FitNet hint loss (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets", ICLR).

        L = (1 / (N·C_t·H_t·W_t)) · ‖ resize(r(F_s)) − F_t ‖²₂

    r is a learnable 1×1 convolution C_s → C_t (the paper's regressor), and resize brings the
    student map to the teacher's H_t×W_t (explicit, see ``resize``). The mean (rather than the
    paper's ½·sum) keeps the scale independent of the map size; fold any factor into the spec
    weight.
    """

    uses_labels = False

    def __init__(self, student_channels: int, teacher_channels: int, resize: str = "bilinear") -> None:
        super().__init__()
        _check_channels(student_channels, teacher_channels, "fitnet")
        self.resize = check_resize_mode(resize, "fitnet")
        self.adapter = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)

    def forward(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        hint = adapt_and_resize(student_feat, self.adapter, teacher_feat.shape[-2:], self.resize, "fitnet")
        check_same_shape(hint, teacher_feat, "fitnet")
        with full_precision(hint.device):
            return F.mse_loss(upcast(hint), upcast(teacher_feat.detach()))


def attention_map(feat: torch.Tensor, p: float) -> torch.Tensor:
    """Spatial attention N×1×H×W: mean over channels of |F|^p (the mean equals the paper's sum
    up to a constant, which the later L2 normalisation removes)."""
    return feat.abs().pow(p).mean(dim=1, keepdim=True)


class AttentionTransferLoss(nn.Module):
    """Attention transfer (Zagoruyko & Komodakis 2017, "Paying More Attention to Attention",
    ICLR).

        Q = vec(Σ_c |F_c|^p) / ‖vec(Σ_c |F_c|^p)‖₂
        L = (1 / (N·H_t·W_t)) · Σ_n ‖ Q_s,n − Q_t,n ‖²₂

    the squared-and-averaged form of the authors' code (``at_loss``), which they weight with
    β = 10³; put such a factor in the spec weight. The student *attention map* (not the
    feature) is resized to the teacher's size before normalisation, which is cheap and needs
    no adapter: channel counts may differ freely.
    """

    uses_labels = False

    def __init__(self, p: float = 2.0, resize: str = "bilinear") -> None:
        super().__init__()
        self.p = check_positive(p, "p", "at")
        self.resize = check_resize_mode(resize, "at")

    def forward(self, student_feat: torch.Tensor, teacher_feat: torch.Tensor) -> torch.Tensor:
        if student_feat.shape[0] != teacher_feat.shape[0]:
            raise EdgekdError(
                f"at: batch sizes differ (student {student_feat.shape[0]}, teacher {teacher_feat.shape[0]})"
            )
        with full_precision(student_feat.device):
            a_s = attention_map(upcast(student_feat), self.p)
            a_t = attention_map(upcast(teacher_feat.detach()), self.p)
            a_s = resize_spatial(a_s, a_t.shape[-2:], self.resize, "at")
            q_s = F.normalize(a_s.flatten(1), dim=1)
            q_t = F.normalize(a_t.flatten(1), dim=1)
            return (q_s - q_t).pow(2).mean()


class ChannelWiseLoss(nn.Module):
    """Channel-wise distillation CWD (Shu et al. 2021, "Channel-wise Knowledge Distillation
    for Dense Prediction", ICCV).

    Each channel is turned into a distribution over spatial positions,
    φ(y_c)_i = softmax_i(y_{c,i} / τ), and

        L = τ² / (N·C) · Σ_n Σ_c Σ_i φ(y^t_{n,c})_i · (log φ(y^t_{n,c})_i − log φ(y^s_{n,c})_i)

    i.e. the KL is summed over positions and *averaged* over channels (the paper's 1/C) and
    over the batch. Works on logits (C = classes, no adapter) and on features: when
    ``student_channels`` and ``teacher_channels`` differ, a learnable 1×1 adapter maps the
    student to the teacher's channels. Spatial sizes are bridged by ``resize``.
    """

    uses_labels = False

    def __init__(
        self,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        tau: float = 1.0,
        resize: str = "bilinear",
    ) -> None:
        super().__init__()
        self.tau = check_positive(tau, "tau", "cwd")
        self.resize = check_resize_mode(resize, "cwd")
        self.adapter: nn.Module = nn.Identity()
        if student_channels is not None and teacher_channels is not None:
            _check_channels(student_channels, teacher_channels, "cwd")
            if student_channels != teacher_channels:
                self.adapter = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        s = adapt_and_resize(student, self.adapter, teacher.shape[-2:], self.resize, "cwd")
        check_same_shape(s, teacher, "cwd")
        with full_precision(s.device):
            n, c = s.shape[:2]
            log_s = F.log_softmax(upcast(s).flatten(2) / self.tau, dim=2)
            log_t = F.log_softmax(upcast(teacher.detach()).flatten(2) / self.tau, dim=2)
            kl = (log_t.exp() * (log_t - log_s)).sum()
            return self.tau**2 * kl / (n * c)
