"""Combining several teachers' logits into one target distribution, pixel by pixel.

``average``: p = Σ_k w_k · softmax(z_k) (weights sum to one) — the weighted average of the
teachers' distributions. ``confidence``: per pixel, teacher k gets weight
w_k · c_k / Σ_j w_j · c_j with c_k its max class probability, so the teacher that is sure of a
pixel dominates there. The result is returned as log-probabilities, which act as logits for
the KD losses (softmax(log p) = p; a KD temperature τ then sharpens/softens p^(1/τ)).
"""
from __future__ import annotations

import torch

from edgekd.errors import EdgekdError

MODES = ("average", "confidence")


def mix_teacher_logits(logits: list[torch.Tensor], weights: list[float] | None = None, mode: str = "average") -> torch.Tensor:
    if mode not in MODES:
        raise EdgekdError(f"teacher mixing {mode!r} is not one of {', '.join(MODES)}")
    if len(logits) == 1:
        return logits[0]
    weights = weights or [1.0] * len(logits)
    if len(weights) != len(logits) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise EdgekdError(f"teacher weights {weights} must be {len(logits)} non-negative numbers with a positive sum")
    probs = torch.stack([z.float().softmax(1) for z in logits])  # K×N×C×H×W
    w = torch.tensor(weights, dtype=probs.dtype, device=probs.device).view(-1, 1, 1, 1, 1)
    if mode == "confidence":
        w = w * probs.amax(dim=2, keepdim=True)
    w = w / w.sum(dim=0, keepdim=True)
    return (w * probs).sum(0).clamp_min(1e-8).log()
