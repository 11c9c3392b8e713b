"""The real-time budget of a device and the one check of measured figures against it.

One function, ``budget_checks``, used by the bench (the ``budget`` block of every result record)
and by compare (the verdict column), so the two can never disagree.

Which time is checked: the **inference** time. A profile's budget is the segmentation model's
share of a frame (``latency_budget_ms`` is smaller than the frame interval: the app's camera,
tracking and rendering take the rest), so the verdict is decided by three figures:

- synchronous FPS (``1000 / mean latency``) ≥ ``target_fps``;
- p99 inference latency ≤ ``latency_budget_ms`` (the tail is what drops frames);
- peak process memory ≤ ``memory_budget_mb``.

The **end-to-end** frame time (camera frame → overlay, p50, when ``bench`` measured it) is checked
against the whole frame interval ``1000 / target_fps`` and reported beside (``e2e_ok`` in the
record, the ``e2e ms`` column), but it does not decide the verdict: it includes pre/post-processing
that an app pipelines with the next frame's inference, and it is not measured for every cell.

A required figure that was not measured makes the verdict ``unknown`` rather than ``meets``: a
candidate is never declared fit on missing evidence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

MEETS, MISSES, UNKNOWN = "meets", "misses", "unknown"


@dataclass(frozen=True)
class Budget:
    """A device's real-time budget for the segmentation share of a frame."""

    target_fps: float
    latency_budget_ms: float
    memory_budget_mb: float

    @classmethod
    def from_mapping(cls, block: Mapping[str, Any]) -> "Budget":
        return cls(float(block["target_fps"]), float(block["latency_budget_ms"]), float(block["memory_budget_mb"]))

    @classmethod
    def from_profile(cls, profile: Any) -> "Budget":
        rt = profile.real_time
        return cls(rt.target_fps, rt.latency_budget_ms, rt.memory_budget_mb)

    @property
    def frame_ms(self) -> float:
        """The frame interval at the target rate: the end-to-end time a frame may take."""
        return 1000.0 / self.target_fps

    def describe(self) -> str:
        return f"≥ {self.target_fps:g} FPS, p99 ≤ {self.latency_budget_ms:g} ms, peak memory ≤ {self.memory_budget_mb:g} MB"

    def as_dict(self) -> dict[str, float]:
        return {"target_fps": self.target_fps, "latency_budget_ms": self.latency_budget_ms,
                "memory_budget_mb": self.memory_budget_mb}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def budget_checks(figures: Mapping[str, Any], budget: Budget) -> dict[str, bool | None]:
    """Each constraint → True (met), False (missed) or None (not measured).

    ``figures`` holds ``fps``, ``latency_p99_ms``, ``peak_mb`` and optionally ``e2e_ms`` (the
    end-to-end frame p50, against the whole frame interval); these are the comparison table's columns.
    """
    rules = {
        "fps": lambda v: v >= budget.target_fps,
        "latency_p99_ms": lambda v: v <= budget.latency_budget_ms,
        "peak_mb": lambda v: v <= budget.memory_budget_mb,
        "e2e_ms": lambda v: v <= budget.frame_ms,
    }
    return {key: None if _missing(figures.get(key)) else bool(rule(float(figures[key]))) for key, rule in rules.items()}


_LABELS = {"fps": "FPS", "latency_p99_ms": "p99 latency", "peak_mb": "peak memory"}  # the verdict's figures


def check_budget(figures: Mapping[str, Any], budget: Budget) -> tuple[list[str], list[str]]:
    """(constraints missed, figures missing) for one measured row, each as a short phrase: the verdict's
    three inference constraints (the end-to-end flag is ``budget_checks(...)["e2e_ms"]``)."""
    ok = budget_checks(figures, budget)
    phrases = {
        "fps": lambda v: f"fps {v:.1f} < {budget.target_fps:g}",
        "latency_p99_ms": lambda v: f"p99 {v:.1f} ms > {budget.latency_budget_ms:g} ms",
        "peak_mb": lambda v: f"memory {v:.0f} MB > {budget.memory_budget_mb:g} MB",
    }
    misses = [phrases[key](float(figures[key])) for key in _LABELS if ok[key] is False]
    missing = [f"no {label}" for key, label in _LABELS.items() if ok[key] is None]
    return misses, missing
