"""The INT8 accuracy budget shared by every INT8 backend: how much mIoU quantisation may cost.

A budget is an absolute drop in mIoU points (0–100 scale) of the INT8 artifact against the FP32
graph of the same runtime, measured on the labelled validation images the export was given.
Unset, it is 1% of the FP32 mIoU (MLPerf accepts a quantised model at ≥ 99% of FP32 accuracy);
``"off"`` turns the gate off (plain post-training quantisation, figures still recorded).

This module imports no runtime: backends pass a ``run`` function, so the gate logic is tested
without ONNX Runtime or OpenVINO.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from edgekd.errors import EdgekdError

DEFAULT_RELATIVE = 0.01  # of the FP32 mIoU: "keeps >= 99% of FP32"
OFF = "off"
#: Fewest calibration images per method. MinMax takes the extreme of every tensor, so a handful of
#: frames sets it; percentile and entropy estimate a histogram tail, which a few frames leave to
#: single images (docs/export.md, "How many images").
MIN_CALIB_IMAGES = {"minmax": 8, "percentile": 16, "entropy": 16}


class AccuracyGateError(EdgekdError):
    """No INT8 configuration met the budget; the message gives the best drop and the float layers."""


def check_budget(value: Any) -> float | str | None:
    """Validate ``--max-accuracy-drop``: None (default 1% of FP32), ``"off"`` or points in [0, 100]."""
    if value is None or (isinstance(value, str) and value.strip().lower() == OFF):
        return None if value is None else OFF
    try:
        points = float(value)
    except (TypeError, ValueError):
        raise EdgekdError(f"--max-accuracy-drop {value!r} must be mIoU points (e.g. 1 or 0.5) or 'off'") from None
    if not 0 <= points <= 100 or math.isnan(points):
        raise EdgekdError(f"--max-accuracy-drop {value!r} must be between 0 and 100 mIoU points (e.g. 1), or 'off'")
    return points


def check_calib_count(method: str, num_images: int) -> None:
    """Refuse a calibration set smaller than ``method`` needs."""
    need = MIN_CALIB_IMAGES[method]
    if num_images < need:
        raise EdgekdError(f"{num_images} calibration images are too few for --calib-method {method} (it needs at least {need}); "
                          f"pass --calib-images {max(need, 100)} with a larger --calib split, or use --calib-method minmax (needs "
                          f"{MIN_CALIB_IMAGES['minmax']})")


def methods_for(requested: str, num_images: int, available: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Methods to try for ``requested`` (``auto`` = every available one with enough images) and the ones left out."""
    if requested != "auto":
        check_calib_count(requested, num_images)
        return [requested], []
    usable = [m for m in available if num_images >= MIN_CALIB_IMAGES[m]]
    if not usable:
        check_calib_count(available[0], num_images)
    return usable, [m for m in available if m not in usable]


@dataclass
class Budget:
    """The resolved budget for one artifact: points, how they were set, the FP32 mIoU they rest on."""

    points: float | None  # None: gate off
    rule: str
    fp32_miou: float

    def met(self, drop: float) -> bool:
        return self.points is None or drop <= self.points + 1e-9


def resolve_budget(option: Any, fp32_miou: float) -> Budget:
    """The budget in points for an FP32 mIoU (points) from the user's option."""
    value = check_budget(option)
    if value == OFF:
        return Budget(None, "off (--max-accuracy-drop off)", fp32_miou)
    if value is None:
        return Budget(round(DEFAULT_RELATIVE * fp32_miou, 4), f"default: {DEFAULT_RELATIVE:.0%} of the FP32 mIoU", fp32_miou)
    return Budget(float(value), "--max-accuracy-drop", fp32_miou)


@dataclass
class Trial:
    """One quantised configuration and its measured mIoU."""

    label: str
    miou: float
    drop: float
    float_layers: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def miou_points(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, masks: np.ndarray, *,
                num_classes: int, ignore_index: int | None) -> float:
    """mIoU (points) of ``run`` over labelled images, one image at a time."""
    from edgekd.metrics import ConfusionMatrix

    confusion = ConfusionMatrix(num_classes, ignore_index)
    for i in range(len(images)):
        confusion.update(np.asarray(run(images[i:i + 1])).argmax(1), masks[i:i + 1])
    return 100.0 * confusion.miou()


def gate_record(budget: Budget, best: Trial, trials: list[Trial], *, images: int, measured_as: str) -> dict[str, Any]:
    """The manifest's ``accuracy_gate`` block."""
    return {
        "status": "passed" if budget.points is not None else "off", "max_drop_points": budget.points, "rule": budget.rule,
        "fp32_miou": round(budget.fp32_miou, 3), "int8_miou": round(best.miou, 3), "drop_points": round(best.drop, 3),
        "int8_share_of_fp32": round(best.miou / budget.fp32_miou, 4) if budget.fp32_miou > 0 else None,
        "validation_images": images, "measured_as": measured_as, "chosen": best.label,
        "float_layers": best.float_layers, "trials": [asdict(t) for t in trials],
    }


def gate_failure(backend: str, budget: Budget, best: Trial, tried: int) -> AccuracyGateError:
    """The one-line error when no configuration met the budget."""
    layers = ", ".join(best.float_layers[:8]) + (f" (+{len(best.float_layers) - 8} more)" if len(best.float_layers) > 8 else "")
    return AccuracyGateError(
        f"{backend} INT8 cannot meet --max-accuracy-drop {budget.points:g} mIoU points ({budget.rule}): best drop "
        f"{best.drop:.2f} points ({best.miou:.2f} vs FP32 {budget.fp32_miou:.2f}) after {tried} configurations, "
        f"with {len(best.float_layers)} layers kept in float [{layers or 'none'}]; no artifact written — raise the budget, "
        "keep the model in fp32/fp16, or fine-tune it with quantisation-aware training")


def gate_from_parity(backend: str, option: Any, parity: dict[str, Any]) -> dict[str, Any]:
    """The gate for an INT8 backend with no search of its own (LiteRT, ExecuTorch), from its parity run.

    Such a backend writes one configuration, so the gate can only accept or refuse it: INT8 mIoU
    against the PyTorch FP32 model on the parity images (the backends' FP32 paths match PyTorch to
    ~1e-5, so this is the runtime's FP32 too). Raises :class:`AccuracyGateError` over budget;
    returns the manifest's ``accuracy_gate`` block otherwise (``not measured`` without parity figures).
    """
    if check_budget(option) == OFF:
        return {"status": "off", "rule": "off (--max-accuracy-drop off)", "measured_as": "parity vs PyTorch FP32",
                **({"fp32_miou": round(100 * parity["miou_reference"], 3), "int8_miou": round(100 * parity["miou_backend"], 3)}
                   if "miou_backend" in parity else {})}
    if "miou_backend" not in parity or "miou_reference" not in parity:
        return {"status": "not measured", "reason": parity.get("reason", f"parity status {parity.get('status')!r}: no INT8 mIoU to gate")}
    fp32, int8 = 100.0 * parity["miou_reference"], 100.0 * parity["miou_backend"]
    budget = resolve_budget(option, fp32)
    trial = Trial("as exported", int8, fp32 - int8)
    if not budget.met(trial.drop):
        raise gate_failure(backend, budget, trial, 1)
    return gate_record(budget, trial, [trial], images=int(parity.get("images", 0)), measured_as="parity vs PyTorch FP32")
