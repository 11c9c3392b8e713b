"""Weight hygiene before export: subnormal (denormal) floats.

Trained checkpoints from other code bases can carry many subnormal weights (docs/export.md, "Weight hygiene": half of
CGNet's). x86 arithmetic on them is ~20× slower in PyTorch and ~9× in ONNX Runtime, and their
values are below any precision a deployed model can use, so the exported copy zeroes them by
default (``keep_subnormals`` turns that off) and the manifest records how many were flushed.
"""
from __future__ import annotations

import torch
from torch import nn

from edgekd.core.subnormal import subnormal_mask


def count_subnormals(model: nn.Module) -> int:
    """Non-zero floating-point parameters and buffers whose magnitude is below the normal range."""
    return sum(int(_subnormal_mask(t).sum()) for t in _float_tensors(model))


def nonfinite_weights(model: nn.Module) -> dict[str, int]:
    """NaN/Inf values per parameter/buffer name (only those that hold any): such a model's outputs are garbage."""
    found = {}
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                found[name] = bad
    return found


def flush_subnormals(model: nn.Module) -> int:
    """Zero every subnormal parameter/buffer value in place; returns how many were zeroed."""
    flushed = 0
    with torch.no_grad():
        for tensor in _float_tensors(model):
            mask = _subnormal_mask(tensor)
            n = int(mask.sum())
            if n:
                tensor[mask] = 0
                flushed += n
    return flushed


def _float_tensors(model: nn.Module) -> list[torch.Tensor]:
    tensors = [p.data for p in model.parameters()] + list(model.buffers())
    return [t for t in tensors if t.is_floating_point()]


def _subnormal_mask(tensor: torch.Tensor) -> torch.Tensor:
    # Read the bits (edgekd.core.subnormal): a float comparison misses subnormals whenever the
    # thread runs with denormals-are-zero, e.g. after OpenVINO or torch.set_flush_denormal.
    return subnormal_mask(tensor)
