"""Parity of an exported artifact against the PyTorch FP32 reference on real validation images.

Three figures per backend: the largest absolute logit difference, the share of pixels whose
argmax class agrees with the reference, and the mIoU change (backend minus reference, both
against the ground-truth masks). Agreement below a threshold is flagged in the manifest with a
``warning`` and printed in red by the CLI: a converter that changes the class map by a few
percent of pixels is a bug or a precision problem, whatever the latency.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from edgekd.metrics import ConfusionMatrix

DEFAULT_THRESHOLD = 0.98
DEFAULT_IMAGES = 100  # a 1-point INT8 budget needs ~100 images (docs/export.md, 'How many images')


def reference_logits(model: Any, images: np.ndarray, *, flush_denormal: bool = True) -> np.ndarray:
    """PyTorch eager FP32 logits, one image at a time (denormals flushed while computing, as evaluation does)."""
    import torch

    previous = torch.set_flush_denormal(True) if flush_denormal else False
    try:
        with torch.inference_mode():
            return np.concatenate([model.eval()(torch.from_numpy(images[i:i + 1])).numpy() for i in range(len(images))])
    finally:
        if previous:
            torch.set_flush_denormal(False)


def run_session(run: Callable[[np.ndarray], np.ndarray], images: np.ndarray) -> np.ndarray:
    """Backend logits, one image at a time (static-batch artifacts take batch 1)."""
    return np.concatenate([np.asarray(run(images[i:i + 1]), dtype=np.float32) for i in range(len(images))])


def compare(reference: np.ndarray, candidate: np.ndarray, masks: np.ndarray, *, num_classes: int,
            ignore_index: int | None, threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Parity figures for candidate vs reference logits (N×C×H×W) over ground-truth masks (N×H×W)."""
    if reference.shape != candidate.shape:
        return {"status": "failed", "reason": f"output shape {tuple(candidate.shape)} differs from the reference {tuple(reference.shape)}"}
    for name, logits in (("the PyTorch FP32 reference", reference), ("the artifact", candidate)):
        bad = int(logits.size - np.count_nonzero(np.isfinite(logits)))
        if bad:  # a NaN difference compares False with every threshold: it must never read as agreement
            return {"status": "failed", "images": int(len(reference)),
                    "reason": f"{name} gives {bad} NaN/Inf logits of {logits.size} (NaN/Inf weights, or an overflow at "
                              "this precision): parity cannot be measured and the artifact's outputs are not usable"}
    ref_cls, cand_cls = reference.argmax(1), candidate.argmax(1)
    ref_cm, cand_cm = ConfusionMatrix(num_classes, ignore_index), ConfusionMatrix(num_classes, ignore_index)
    ref_cm.update(ref_cls, masks)
    cand_cm.update(cand_cls, masks)
    diff = np.abs(reference.astype(np.float64) - candidate.astype(np.float64))
    result = {
        "status": "ok", "images": int(len(reference)),
        "max_abs_logit_diff": float(diff.max()), "mean_abs_logit_diff": float(diff.mean()),
        "argmax_agreement": float((ref_cls == cand_cls).mean()),
        "miou_reference": _round(ref_cm.miou()), "miou_backend": _round(cand_cm.miou()),
        "miou_delta": _round(cand_cm.miou() - ref_cm.miou()), "threshold": threshold,
    }
    if result["argmax_agreement"] < threshold:
        result["status"] = "below_threshold"  # never "ok" under the threshold
        result["warning"] = (f"argmax agreement {result['argmax_agreement']:.4f} is below {threshold}: this artifact "
                             "changes the class map; check the precision, calibration data and normalisation")
    return result


def _round(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def unavailable(reason: str) -> dict[str, Any]:
    return {"status": "unavailable", "reason": reason}


def skipped(reason: str) -> dict[str, Any]:
    return {"status": "skipped", "reason": reason}


def worst_warning(parity: dict[str, Any]) -> str | None:
    """The first warning in a parity block or its variants (None when all agree)."""
    if parity.get("warning"):
        return parity["warning"]
    for name, variant in parity.get("variants", {}).items():
        if isinstance(variant, dict) and variant.get("warning"):
            return f"[{name}] {variant['warning']}"
    return None


def summary_line(name: str, parity: dict[str, Any]) -> str:
    """One line for the CLI: figures, or the status and reason."""
    if parity.get("status") not in ("ok", "below_threshold"):
        return f"{name}: parity {parity.get('status')} — {parity.get('reason', '')}"
    delta = parity.get("miou_delta")
    delta_text = "n/a" if delta is None else f"{delta * 100:+.2f} pts"
    return (f"{name}: max |Δlogit| {parity['max_abs_logit_diff']:.2e}, argmax agreement "
            f"{parity['argmax_agreement'] * 100:.2f}%, mIoU Δ {delta_text} ({parity['images']} images)")
