"""Weight hygiene: subnormal, NaN and Inf values, counted per tensor, and flushing subnormals.

Why subnormals matter (docs/export.md, "Weight hygiene: subnormal weights"): half of the real CGNet checkpoint's
weights are subnormal floats (non-zero, below ``torch.finfo(dtype).tiny``). x86 CPUs take a slow
micro-code path for every arithmetic operation on them unless the runtime sets FTZ/DAZ, which
made CGNet 20× slower in PyTorch eager and ~9× slower in ONNX Runtime on this machine. Their
values are also far below what FP16/INT8 deployment can represent, so zeroing them changes the
outputs by ~1e-5. ``check_weights`` and ``flush_subnormals`` are the stable functions the export
pipeline calls; they take a plain state dict (name → tensor) so they work for checkpoints, ONNX
initializers and OpenVINO constants alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from edgekd.core.subnormal import FLOAT_DTYPES, denormals_flushed, subnormal_mask  # noqa: F401  (re-exported)
from edgekd.doctor.findings import Finding

FP16_MAX = 65504.0
FP16_TINY = 6.103515625e-05  # smallest normal FP16 value
TOP_TENSORS = 10  # tensors listed per finding (the full count is always given)


@dataclass(frozen=True)
class TensorHealth:
    """Counts of problem values in one floating-point tensor."""

    name: str
    numel: int
    subnormal: int
    nan: int
    inf: int
    fp16_overflow: int
    fp16_underflow: int  # non-zero normal FP32 values that FP16 cannot hold as normals


def tensor_health(name: str, tensor: torch.Tensor) -> TensorHealth:
    t = tensor.detach()
    finite = torch.isfinite(t)
    absval = t.abs()
    sub = subnormal_mask(t)
    normal = finite & (absval >= torch.finfo(t.dtype).tiny)
    return TensorHealth(
        name=name, numel=t.numel(), subnormal=int(sub.sum()), nan=int(torch.isnan(t).sum()), inf=int(torch.isinf(t).sum()),
        fp16_overflow=int((finite & (absval > FP16_MAX)).sum()),
        fp16_underflow=int((normal & (absval < FP16_TINY)).sum()) if t.dtype != torch.float16 else 0,
    )


def weights_health(state_dict: Mapping[str, torch.Tensor]) -> list[TensorHealth]:
    """Health of every floating-point tensor of a state dict (integer buffers are skipped)."""
    return [tensor_health(k, v) for k, v in state_dict.items() if isinstance(v, torch.Tensor) and v.dtype in FLOAT_DTYPES]


def _per_tensor(health: list[TensorHealth], attr: str) -> dict[str, int]:
    ranked = sorted((h for h in health if getattr(h, attr)), key=lambda h: -getattr(h, attr))
    return {h.name: getattr(h, attr) for h in ranked}


def _details(health: list[TensorHealth], attr: str) -> dict:
    per = _per_tensor(health, attr)
    total = sum(h.numel for h in health)
    count = sum(per.values())
    return {"count": count, "of_values": total, "fraction": count / total if total else 0.0, "tensors_affected": len(per),
            "per_tensor": dict(list(per.items())[:TOP_TENSORS]), "per_tensor_truncated": len(per) > TOP_TENSORS}


def check_weights(state_dict: Mapping[str, torch.Tensor]) -> list[Finding]:
    """Findings for subnormal, NaN, Inf and FP16-unrepresentable values (none when the weights are clean)."""
    health = weights_health(state_dict)
    findings = []
    nan, inf, sub = (_details(health, a) for a in ("nan", "inf", "subnormal"))
    if nan["count"] or inf["count"]:
        what = " and ".join(f"{d['count']:,} {k}" for k, d in (("NaN", nan), ("Inf", inf)) if d["count"])
        findings.append(Finding(
            "error", "nonfinite-weights", f"{what} weight values in {nan['tensors_affected'] + inf['tensors_affected']} tensor(s)",
            "every output that touches them is NaN/Inf on every device: the model is broken, not slow",
            "retrain or restore an earlier checkpoint; look for a diverged run (loss NaN) or a bad conversion",
            details={"nan": nan, "inf": inf}))
    if sub["count"]:
        findings.append(Finding(
            "warning", "subnormal-weights",
            f"{sub['count']:,} of {sub['of_values']:,} weight values ({sub['fraction']:.1%}) are subnormal floats "
            f"in {sub['tensors_affected']} tensor(s)",
            "x86 CPUs (PyTorch, ONNX Runtime, OpenVINO without FTZ/DAZ) compute on subnormals through a slow micro-code "
            "path: the real CGNet checkpoint ran 20× slower in PyTorch and ~9× slower in ONNX Runtime on this machine; "
            "GPUs and NPUs flush them anyway, so the values carry no information a deployed model keeps",
            "flush them to zero: `edgekd doctor CKPT --fix OUT.safetensors` (reports parity and the speed change), "
            "or let `edgekd export` flush them (its default)", details=sub))
    findings.extend(_fp16_findings(health))
    return findings


def _fp16_findings(health: list[TensorHealth]) -> list[Finding]:
    over, under = _details(health, "fp16_overflow"), _details(health, "fp16_underflow")
    out = []
    if over["count"]:
        out.append(Finding(
            "warning", "fp16-overflow", f"{over['count']:,} weight values exceed FP16's largest value ({FP16_MAX:g})",
            "they become Inf when the model runs in FP16 (TensorRT fp16, Core ML, OpenVINO f16 on GPU)",
            "keep those layers in FP32 (TensorRT layer precision, Core ML op-selection) or rescale the layer", details=over))
    if under["fraction"] > 0.01:
        out.append(Finding(
            "info", "fp16-underflow",
            f"{under['count']:,} non-zero weight values ({under['fraction']:.1%}) are below FP16's smallest normal ({FP16_TINY:.1e})",
            "in FP16 they lose precision or become zero; a large share can shift accuracy of an FP16 deployment",
            "check FP16 parity after export (the export manifest's parity block measures it)", details=under))
    return out


def flush_subnormals(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """A copy of ``state_dict`` with every subnormal value set to zero, and how many were zeroed.

    Tensors without subnormals are passed through (not copied); the input is never modified.
    """
    out: dict[str, torch.Tensor] = {}
    flushed = 0
    for name, tensor in state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.dtype in FLOAT_DTYPES:
            mask = subnormal_mask(tensor)
            n = int(mask.sum())
            if n:
                tensor = tensor.masked_fill(mask, 0)
                flushed += n
        out[name] = tensor
    return out, flushed


def count_subnormals(state_dict: Mapping[str, torch.Tensor]) -> int:
    return sum(h.subnormal for h in weights_health(state_dict))
