"""Stronger teacher targets: test-time augmentation (horizontal flip, several scales) of a frozen
teacher, averaged before its logits go into the teacher-logit cache (or to a live student).

Spec syntax (``--teacher-tta``): ``flip``, ``scales=0.75,1.25``, ``flip,scales=0.75,1.25`` or
``none``. The original view (scale 1, no flip) is always one of the views; ``scales`` adds
resized views, ``flip`` adds the mirror of every view. The teacher's *logits* are averaged (each
view resized back to the input size, bilinear, and un-flipped): averaged logits stay logits, so
the student's temperature applies to them as to plain ones, and a flip-equivariant teacher's
targets do not change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgekd.errors import EdgekdError

_HINT = "write e.g. --teacher-tta flip or --teacher-tta flip,scales=0.75,1.25"


@dataclass(frozen=True)
class TeacherTTA:
    """Which views of each image the teacher sees; their logits are averaged."""

    flip: bool = False
    scales: tuple[float, ...] = ()

    @classmethod
    def parse(cls, text: "str | TeacherTTA | None") -> "TeacherTTA | None":
        """``None``/``"none"`` → None (plain teacher); otherwise the parsed setting."""
        if text is None or isinstance(text, TeacherTTA):
            return text
        text = text.strip()
        if text.lower() in ("", "none"):
            return None
        head, sep, tail = text.partition("scales=")
        words = [w.strip() for w in head.split(",") if w.strip()]
        if any(w != "flip" for w in words):
            raise EdgekdError(f"--teacher-tta {text!r}: unknown part {next(w for w in words if w != 'flip')!r}; {_HINT}")
        scales = _parse_scales(tail, text) if sep else ()
        return cls(flip=bool(words), scales=scales)

    @property
    def tag(self) -> str:
        """Short stable text for cache keys and provenance, e.g. ``flip-s0.75_1.25``."""
        parts = (["flip"] if self.flip else []) + (["s" + "_".join(f"{s:g}" for s in self.scales)] if self.scales else [])
        return "-".join(parts)

    def to_dict(self) -> dict:
        return {"flip": self.flip, "scales": [1.0, *self.scales], "average": "logits"}


def _parse_scales(text: str, spec: str) -> tuple[float, ...]:
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            raise EdgekdError(f"--teacher-tta {spec!r}: scale {item.strip()!r} is not a number; {_HINT}") from None
        if not math.isfinite(value) or not 0.25 <= value <= 4:
            raise EdgekdError(f"--teacher-tta {spec!r}: scale {value:g} must be between 0.25 and 4; {_HINT}")
        if value != 1.0 and value not in values:
            values.append(value)
    if not values:
        raise EdgekdError(f"--teacher-tta {spec!r}: give at least one scale other than 1 (1 is always used); {_HINT}")
    return tuple(sorted(values))


@torch.no_grad()
def tta_logits(teacher: torch.nn.Module, x: torch.Tensor, tta: TeacherTTA | None) -> torch.Tensor:
    """Mean teacher logits over the views of normalised N×3×H×W ``x``, at ``x``'s size."""
    if tta is None:
        return teacher(x)
    size = x.shape[-2:]
    total, views = None, 0
    for scale in (1.0, *tta.scales):
        scaled = x if scale == 1.0 else F.interpolate(
            x, size=(max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), mode="bilinear", align_corners=False)
        for flip in ((False, True) if tta.flip else (False,)):
            out = teacher(scaled.flip(-1) if flip else scaled)
            out = out.flip(-1) if flip else out
            if tuple(out.shape[-2:]) != tuple(size):
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            total = out.float() if total is None else total + out.float()
            views += 1
    return total / views
