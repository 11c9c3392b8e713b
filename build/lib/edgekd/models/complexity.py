"""Model complexity: parameter count and multiply-accumulate operations (MACs).

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` on a real forward pass of one
1×3×H×W image in eval mode. That counter records matrix products and convolutions (2 FLOPs per
multiply-add) and ignores element-wise ops, normalisation, pooling and resizing, so
``MACs = FLOPs / 2`` is exactly the number of multiply-accumulates in convolutions and matmuls —
the figure papers quote as "FLOPs" or "MAdds". Bias additions are not counted.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgekd.errors import EdgekdError

DEFAULT_INPUT_SIZE = (360, 480)  # (H, W): CamVid frames and the AR pipeline's default input


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (buffers such as BatchNorm running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _check_size(input_size: tuple[int, int]) -> tuple[int, int]:
    if len(input_size) != 2 or any(int(v) < 1 for v in input_size):
        raise EdgekdError(f"input_size={input_size!r} must be (H, W) with positive integers, e.g. (360, 480)")
    return int(input_size[0]), int(input_size[1])


def count_macs(model: nn.Module, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE) -> int:
    """Multiply-accumulates of one forward pass on a 1×3×H×W input (``input_size`` = (H, W)).

    Runs the model once in eval mode (restoring its previous mode) with gradients disabled.
    """
    h, w = _check_size(input_size)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, h, w, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def model_summary(name: str, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE, num_classes: int = 11,
                  **kwargs: Any) -> dict[str, Any]:
    """Build a zoo model (random weights) and report what a model table needs about it.

    ``kwargs`` go to the builder (e.g. ``width_mult=0.75``), so variants can be compared.
    """
    from edgekd.models.registry import create_model, list_models

    model = create_model(name, num_classes=num_classes, **kwargs)
    entry = next((e for e in list_models() if e.name == name), None)
    h, w = _check_size(input_size)
    return {
        "name": name,
        "role": entry.role if entry else "user",
        "family": entry.family if entry else "user",
        "num_classes": num_classes,
        "params": count_params(model),
        "macs": count_macs(model, (h, w)),
        "input_size": [h, w],
        "output_stride": int(getattr(model, "output_stride", 1)),
    }
