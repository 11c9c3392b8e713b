"""Input-size lists: ``"360x480,270x360,240x320"`` → ``[(360, 480), (270, 360), (240, 320)]``.

The resolution curve (docs/resolution_curve.md) runs one model at several input sizes; export,
eval and bench take the sizes as one comma-separated list. ``judge_input_size`` is the one rule
for a size off the model's stride grid, used by export, eval and doctor alike. Ground floor:
imports only the error type (torch only inside the function that runs a model), so every layer
can use it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

from edgekd.errors import EdgekdError

_HW = re.compile(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*")


def parse_hw(text: str) -> tuple[int, int]:
    """``"240x320"`` -> ``(240, 320)`` (height first), both positive; the one "HxW" parser for every
    size flag and option (``data synth --image-size``, ``--crop-size``, camera sizes; lists go through ``parse_input_sizes``)."""
    match = _HW.fullmatch(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) <= 0 or int(match.group(2)) <= 0:
        raise EdgekdError(f"size {text!r} is not HxW: give height and width as positive integers joined by 'x', e.g. 240x320")
    return int(match.group(1)), int(match.group(2))


def format_size(size: tuple[int, int] | list[int]) -> str:
    """(H, W) → ``"HxW"``."""
    return f"{int(size[0])}x{int(size[1])}"


def _one(item: Any, text: str) -> tuple[int, int]:
    if isinstance(item, str):
        match = _HW.fullmatch(item)
        if not match:
            where = f" (in {text!r})" if text.strip() != item.strip() else ""
            raise EdgekdError(f"input size {item!r} must be HxW in pixels, height first{where}: e.g. 360x480, "
                              "or 360x480,240x320 for several")
        h, w = int(match.group(1)), int(match.group(2))
    elif isinstance(item, (tuple, list)) and len(item) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in item):
        h, w = int(item[0]), int(item[1])
    else:
        raise EdgekdError(f"input size {item!r} must be 'HxW' or a pair (H, W) of ints")
    if h < 1 or w < 1:
        raise EdgekdError(f"input size {h}x{w} must be positive in both dimensions")
    return h, w


def parse_input_sizes(value: str | Iterable[Any] | tuple[int, int] | None) -> list[tuple[int, int]]:
    """Validated, ordered (H, W) pairs; ``None`` → ``[]`` (the caller's default size).

    Accepts ``"HxW[,HxW...]"``, one (H, W) pair, or an iterable of strings/pairs. An empty item
    (``"360x480,,240x320"``) and a size given twice are errors, never silently dropped: a
    duplicate would make two artifacts (or two eval lines) claim the same point of the curve.
    """
    if value is None:
        return []
    if isinstance(value, str):
        text, items = value, value.split(",")
        if any(not i.strip() for i in items):
            raise EdgekdError(f"input size list {value!r} has an empty entry; separate sizes with single commas, "
                              "e.g. 360x480,240x320")
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        text, items = format_size(value), [tuple(value)]
    else:
        items = list(value)
        text = ",".join(i if isinstance(i, str) else format_size(i) for i in items) if items else ""
    sizes = [_one(i, text) for i in items]
    if not sizes:
        raise EdgekdError("no input size given; pass HxW[,HxW...], e.g. --input-size 360x480,240x320")
    seen: set[tuple[int, int]] = set()
    for size in sizes:
        if size in seen:
            raise EdgekdError(f"input size {format_size(size)} appears twice in {text!r}; give each size once")
        seen.add(size)
    return sizes


@dataclass(frozen=True)
class SizeVerdict:
    """The one input-size rule, shared by ``export``, ``eval`` and ``doctor``.

    ``ok``: a multiple of the output stride. ``off_grid``: not a multiple, but the model runs at it
    and returns logits of that size (it resizes internally): accepted, with ``message`` as a note
    (export records it, doctor warns). ``refused``: the model fails at it or returns logits of
    another size: export refuses it, doctor reports an error. ``nearest`` is the next multiple.
    """

    status: str  # "ok" | "off_grid" | "refused"
    message: str | None
    nearest: tuple[int, int]


def judge_input_size(model: Any, size: tuple[int, int], stride: int, arch: str) -> SizeVerdict:
    """Classify ``size`` for ``model`` (see ``SizeVerdict``); an off-grid size is run through the model once."""
    h, w = size
    stride = max(int(stride), 1)
    up = (math.ceil(h / stride) * stride, math.ceil(w / stride) * stride)
    if h % stride == 0 and w % stride == 0:
        return SizeVerdict("ok", None, up)
    fix = f"use --input-size {up[0]}x{up[1]} (or another multiple of {stride})"
    if model is None:  # an artifact: its export already ran the model at this size and accepted it
        return SizeVerdict("off_grid", f"{h}x{w} is not a multiple of the output stride {stride}; the exported model "
                           f"resizes internally at it, but {up[0]}x{up[1]} would avoid the resampling", up)
    import torch

    try:
        with torch.inference_mode():
            out = model.eval()(torch.zeros(1, 3, h, w))
    except Exception as err:  # noqa: BLE001 — any failure at this size is the refusal's reason
        first = (str(err).splitlines() or [type(err).__name__])[0][:120]
        return SizeVerdict("refused", f"input size {h}x{w} is not divisible by {arch}'s output stride {stride} and the "
                           f"model fails at it ({type(err).__name__}: {first}); {fix}", up)
    if tuple(out.shape[-2:]) != (h, w):
        return SizeVerdict("refused", f"input size {h}x{w} is not divisible by {arch}'s output stride {stride}: the model "
                           f"returns {out.shape[-2]}x{out.shape[-1]} logits at it; {fix}", up)
    return SizeVerdict("off_grid", f"{h}x{w} is not a multiple of the output stride {stride}; the model runs at it "
                       f"(it resizes internally), but {up[0]}x{up[1]} would avoid the resampling", up)


def parse_input_size(value: str | tuple[int, int] | list[int] | None) -> tuple[int, int] | None:
    """``"360x480"`` (H×W) or a pair → (H, W); None keeps the checkpoint's size."""
    if value is None:
        return None
    if isinstance(value, str):
        match = _HW.fullmatch(value)
        if not match:
            raise EdgekdError(f"input size {value!r} must be HxW in pixels, e.g. 360x480")
        value = (int(match.group(1)), int(match.group(2)))
    h, w = (int(v) for v in value)
    if h < 1 or w < 1:
        raise EdgekdError(f"input size {h}x{w} must be positive")
    return h, w


def check_input_size(model: Any, size: tuple[int, int], stride: int, arch: str) -> str | None:
    """Refuse a size the model cannot run at; return a note when it runs but is off the stride grid.

    The rule is ``judge_input_size`` (above), which ``doctor`` applies too: sizes that
    are multiples of ``output_stride`` are always fine; other sizes (CamVid's 360 rows against a
    stride of 16 or 32) work for models that resize internally and break models that concatenate
    skip features, so the model is run once at that size to find out which it is.
    """
    verdict = judge_input_size(model, size, stride, arch)
    if verdict.status == "refused":
        raise EdgekdError(verdict.message)
    return verdict.message
