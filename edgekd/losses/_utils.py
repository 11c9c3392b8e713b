"""Helpers shared by the loss families: precision, explicit resizing, label masks.

Every loss does its arithmetic in float32 (or float64 when given float64, so that
``torch.autograd.gradcheck`` works) with autocast switched off: under float16 autocast the
logits arrive in half precision, and a softmax over thousands of pixels or a squared
difference of similarity matrices loses too much in half precision to be a useful signal.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F

from edgekd.errors import EdgekdError

RESIZE_MODES = ("bilinear", "nearest", "area", "none")


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 → float32; float32 and float64 are kept (float64 for gradcheck)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


@contextmanager
def full_precision(device: torch.device) -> Iterator[None]:
    """Switch autocast off for the loss arithmetic on ``device`` (no-op when it is off)."""
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def check_resize_mode(mode: str, what: str) -> str:
    """Validate a resize mode at construction time, so a typo fails before training starts."""
    if mode not in RESIZE_MODES:
        raise EdgekdError(
            f"{what}: resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}; "
            "'none' means the spatial sizes must already match"
        )
    return mode


def resize_spatial(x: torch.Tensor, size: tuple[int, int], mode: str, what: str) -> torch.Tensor:
    """Resize the last two dims of an N×C×H×W map to ``size`` with an explicit, named mode.

    ``mode='none'`` refuses to resize: a size mismatch then raises instead of being papered
    over, for users who want to be sure that the two maps are aligned by construction.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if mode == "none":
        raise EdgekdError(
            f"{what}: spatial size {tuple(x.shape[-2:])} differs from {size} and resize='none'; "
            "pick features of equal stride or set resize=bilinear"
        )
    if mode == "bilinear":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    if mode == "area":
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="nearest")


def check_same_shape(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise EdgekdError(
            f"{what}: student shape {tuple(student.shape)} differs from teacher shape "
            f"{tuple(teacher.shape)}; resize/adapt them first (DistillationObjective does this)"
        )


def valid_mask(
    labels: torch.Tensor | None, like: torch.Tensor, ignore_index: int, what: str
) -> torch.Tensor | None:
    """Boolean N×H×W mask of pixels whose label is not ``ignore_index`` (None: all pixels)."""
    if labels is None:
        return None
    if labels.dim() != 3 or labels.shape[0] != like.shape[0] or labels.shape[-2:] != like.shape[-2:]:
        raise EdgekdError(
            f"{what}: labels of shape {tuple(labels.shape)} do not match logits of shape "
            f"{tuple(like.shape)}; labels must be N×H×W at the logits' resolution "
            "(models return logits at input resolution)"
        )
    return labels != ignore_index


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` (all when None); 0 with a live graph when mask is empty."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def pixel_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-pixel KL(softmax(t/τ) ‖ softmax(s/τ)) over the class dim, N×H×W, via log_softmax."""
    log_s = F.log_softmax(student_logits / tau, dim=1)
    log_t = F.log_softmax(teacher_logits / tau, dim=1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=1)


def check_positive(value: float, name: str, what: str) -> float:
    if not value > 0:
        raise EdgekdError(f"{what}: {name}={value!r} must be > 0")
    return float(value)
