"""Estimates for what a user has at hand: an ONNX file, or a checkpoint exported to ONNX on the fly."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.estimate.onnx_cost import graph_cost
from edgekd.estimate.roofline import PEAK_KEYS, Estimate, estimate_cost


def estimate_target(target: str | os.PathLike, device: str, precisions: list[str] | None = None, *, arch: str | None = None,
                    num_classes: int | None = None, input_size: tuple[int, int] | None = None,
                    **overrides: Any) -> tuple[list[Estimate], list[str]]:
    """Estimates of ``target`` on ``device`` for each precision, and the precisions skipped (with why).

    ``target`` is an ``.onnx`` file (estimated as is) or a checkpoint (exported to ONNX at
    ``input_size``, default the profile's). Without ``precisions``, every precision the profile
    lists that has a peak figure is estimated; the others are reported as skipped.
    """
    from edgekd.profiles import load_profile

    profile = load_profile(device)
    path = Path(target)
    if not path.is_file():
        raise EdgekdError(f"{str(path)!r} is not a file; give an .onnx graph or a checkpoint")
    explicit = precisions is not None
    wanted = precisions or list(profile.precisions)
    skipped = []
    if not explicit:
        missing = [p for p in wanted if getattr(profile.hardware, PEAK_KEYS[p]) is None and overrides.get("peak_tflops") is None]
        skipped = [f"{p}: profile gives no hardware.{PEAK_KEYS[p]}" for p in missing]
        wanted = [p for p in wanted if p not in missing]
    if path.suffix == ".onnx":
        cost, source = graph_cost(path), str(path)
    else:
        cost, source = _checkpoint_cost(path, arch, num_classes, input_size or tuple(profile.input_size))
    estimates = []
    for precision in wanted:
        e = estimate_cost(cost, profile, precision, **overrides)
        e.basis["onnx"] = source
        estimates.append(e)
    return estimates, skipped


def _checkpoint_cost(path: Path, arch: str | None, num_classes: int | None, size: tuple[int, int]) -> tuple[Any, str]:
    from edgekd.backends.onnx_export import export_onnx
    from edgekd.checkpoint import load_checkpoint

    model, meta = load_checkpoint(path, arch=arch, num_classes=num_classes)
    with tempfile.TemporaryDirectory(prefix="edgekd-estimate-") as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, (int(size[0]), int(size[1])), onnx_path)
        return graph_cost(onnx_path), f"{path.name} ({meta.arch}) exported to ONNX at {size[0]}x{size[1]}"
