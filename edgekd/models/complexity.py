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


def _structure_key(name: str, model: nn.Module, input_size: tuple[int, int]) -> str:
    """What a MAC count depends on: the model (name, every tensor's name and shape), the input size,
    and the code that builds and counts it (edgekd and torch versions)."""
    import hashlib

    from edgekd import __version__

    shapes = ";".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    digest = hashlib.sha256(f"{__version__}|{torch.__version__}|{shapes}".encode()).hexdigest()[:16]
    return f"{name}@{input_size[0]}x{input_size[1]}#{digest}"


def mac_cache_path():
    """``<edgekd cache>/macs.json``: MAC counts of built models, so ``edgekd models`` is not a minute of forwards."""
    from edgekd.paths import cache_dir

    return cache_dir() / "macs.json"


def cached_macs(name: str, model: nn.Module, input_size: tuple[int, int] = DEFAULT_INPUT_SIZE,
                on_miss=None) -> int:
    """:func:`count_macs`, remembered in :func:`mac_cache_path` under :func:`_structure_key`.

    A counted forward of a large teacher at 360x480 takes seconds on a small CPU, and the count
    only changes with the architecture, the input size or the code, all of which are in the key.
    ``on_miss(name)`` is called before a count is computed (progress for the caller). An unreadable
    or unwritable cache is not an error: the count is computed (and not remembered).
    """
    import json
    import os
    import tempfile

    h, w = _check_size(input_size)
    key, path = _structure_key(name, model, (h, w)), mac_cache_path()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), int):
        return known[key]
    if on_miss is not None:
        on_miss(name)
    macs = count_macs(model, (h, w))
    known = {**(known if isinstance(known, dict) else {}), key: macs}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".macs-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(known, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass
    return macs
