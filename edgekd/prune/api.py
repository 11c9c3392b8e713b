"""``prune_checkpoint``: a checkpoint in, a smaller rebuildable checkpoint out.

Levers, in the order they are applied: ``drop_blocks`` residual blocks removed from the deepest
stage (CGNet ``level3``, ESPNet ``encoder.level3``), then structured channel pruning (see
``edgekd.prune.channels``) at one uniform fraction per group, found by bisection so the result
meets the MACs or parameter target. The plan (``edgekd.models.structure``) goes into the
checkpoint's metadata; the weights stay safetensors.
"""
from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.prune.channels import PruneError, prune_pass
from edgekd.models.structure import STRUCTURE_FORMAT, changed_layers, drop_blocks, refresh_feature_channels

IMPORTANCE = ("magnitude", "bn", "taylor")
MAX_FRACTION = 0.9  # never remove more than 90% of a group's channels
BISECTION_STEPS = 7
_BLOCK_LISTS = {"CGNet": "level3", "ESPNet": "encoder.level3"}


@dataclass
class PruneTarget:
    """What the pruned model must reach: ``kind`` macs or params (a ratio of the parent's), or latency."""

    kind: str
    value: float
    device: str | None = None

    def check(self) -> None:
        if self.kind == "latency":
            raise PruneError("--target-latency-ms is not implemented yet (it needs an ONNX export per search step); "
                             "use --target-macs R or --target-params R, then check the result with "
                             "`edgekd estimate PRUNED --device PROFILE`")
        if self.kind not in ("macs", "params"):
            raise PruneError(f"pruning target {self.kind!r} is not one of macs, params, latency")
        if not 0.0 < self.value < 1.0:
            raise PruneError(f"--target-{self.kind} {self.value} must be a ratio of the parent's {self.kind} "
                             "strictly between 0 and 1 (0.5 = half)")


@dataclass
class PruneResult:
    out: Path
    before: dict[str, int]
    after: dict[str, int]
    fraction: float
    dropped_blocks: dict[str, list[int]]
    skipped: dict[str, str]
    structure: dict[str, Any] = field(repr=False, default_factory=dict)
    model: nn.Module | None = field(repr=False, default=None)  # the in-memory pruned network that was saved

    def as_dict(self) -> dict[str, Any]:
        ratios = {k: self.after[k] / self.before[k] for k in ("macs", "params", "file_bytes") if self.before.get(k)}
        return {"out": str(self.out), "before": self.before, "after": self.after, "ratios": ratios,
                "channel_fraction": self.fraction, "dropped_blocks": self.dropped_blocks, "skipped_groups": self.skipped}


def _importance(name: str):
    import torch_pruning as tp

    if name not in IMPORTANCE:
        raise PruneError(f"--importance {name!r} is not one of {', '.join(IMPORTANCE)}")
    return {"magnitude": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "bn": lambda: tp.importance.BNScaleImportance(),
            "taylor": lambda: tp.importance.GroupTaylorImportance()}[name]


def block_drop_plan(model: nn.Module, n: int) -> dict[str, list[int]]:
    """The last ``n`` residual blocks of the model's deepest stage (their input and output widths are equal)."""
    if n == 0:
        return {}
    path = _BLOCK_LISTS.get(type(model).__name__)
    if path is None:
        raise PruneError(f"--drop-blocks is not supported for {type(model).__name__} "
                         f"(supported: {', '.join(sorted(_BLOCK_LISTS))}); leave it out")
    blocks = model.get_submodule(path)
    if n < 0 or n >= len(blocks):
        raise PruneError(f"--drop-blocks {n}: {path} of {type(model).__name__} has {len(blocks)} blocks; "
                         f"drop between 0 and {len(blocks) - 1}")
    return {path: list(range(len(blocks) - n, len(blocks)))}


def _search_size(input_size: tuple[int, int]) -> tuple[int, int]:
    """MACs are counted at a quarter of the input size during the search (ratios barely change; 16x faster)."""
    return tuple(max(32, v // 4 // 8 * 8) for v in input_size)  # type: ignore[return-value]


def _measure(model: nn.Module, kind: str, size: tuple[int, int]) -> int:
    from edgekd.models.complexity import count_macs, count_params

    return count_macs(model, size) if kind == "macs" else count_params(model)


def search_fraction(base: nn.Module, target: PruneTarget, make_pass, size: tuple[int, int]):
    """The smallest uniform channel fraction whose pruned model meets the target (bisection)."""
    reference = _measure(base, target.kind, size)
    model, result = make_pass(0.0)
    if _measure(model, target.kind, size) / reference <= target.value:
        return 0.0, model, result
    model, result = make_pass(MAX_FRACTION)
    best = _measure(model, target.kind, size) / reference
    if best > target.value:
        raise PruneError(f"--target-{target.kind} {target.value:g} cannot be reached: the best ratio is {best:.3f} "
                         f"(removing {MAX_FRACTION:.0%} of every prunable group; {len(result.skipped)} groups left whole); "
                         "raise the target or add --drop-blocks. Nothing was written")
    lo, hi, found = 0.0, MAX_FRACTION, (MAX_FRACTION, model, result)
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        model, result = make_pass(mid)
        if _measure(model, target.kind, size) / reference <= target.value:
            hi, found = mid, (mid, model, result)
        else:
            lo = mid
    return found


def prune_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike, target: PruneTarget, *,
                     arch: str | None = None, importance: str = "magnitude", data: str | None = None,
                     calib_images: int = 16, iterative_steps: int = 1, drop_blocks_n: int = 0,
                     force: bool = False) -> PruneResult:
    """Prune ``checkpoint`` to ``target`` and write ``out`` (atomically; an existing file only with ``force``)."""
    import torch_pruning as tp

    from edgekd.checkpoint import load_checkpoint, save_checkpoint
    from edgekd.models import create_model
    from edgekd.models.complexity import count_macs, count_params

    target.check()
    if Path(out).exists() and not force:
        raise PruneError(f"--out {out} exists; pass --force to overwrite it, or choose another --out")
    if Path(out).suffix != ".safetensors":
        raise PruneError(f"--out {out} must end in .safetensors")
    if iterative_steps < 1:
        raise PruneError(f"--iterative {iterative_steps} must be at least 1 (1 = one-shot)")
    importance_fn = _importance(importance)
    if importance == "taylor" and not data:
        raise PruneError("--importance taylor needs gradients on real images: pass --data DIR (and --calib-images N)")
    model, meta = load_checkpoint(checkpoint, arch=arch)
    if meta.structure is not None:
        raise PruneError(f"{checkpoint} is already pruned; prune its unpruned parent with the lower target instead")
    size = (int(meta.input_size[0]), int(meta.input_size[1]))
    before = {"macs": count_macs(model, size), "params": count_params(model),
              "file_bytes": Path(checkpoint).stat().st_size}
    dropped = block_drop_plan(model, drop_blocks_n)
    base = copy.deepcopy(model).eval()
    drop_blocks(base, dropped)
    before_step = _taylor_hook(data, calib_images, meta) if importance == "taylor" else None
    example, probe = torch.zeros(1, 3, 64, 64), torch.zeros(1, 3, 32, 32)
    skip: dict[str, str] = {}

    def make_pass(fraction: float):
        return prune_pass(base, fraction, importance_fn, steps=iterative_steps, example=example, probe=probe,
                          skip=skip, before_step=before_step)

    fraction, pruned, result = search_fraction(model, target, make_pass, _search_size(size))
    refresh_feature_channels(pruned)
    reference = create_model(meta.arch, num_classes=meta.num_classes, **meta.arch_kwargs)
    drop_blocks(reference, dropped)
    meta.structure = {
        "format": STRUCTURE_FORMAT, "tool": "edgekd prune", "torch_pruning": _tp_version(tp),
        "dropped_blocks": dropped, "layers": changed_layers(reference, pruned), "groups": result.groups,
        "skipped": result.skipped, "importance": importance, "iterative_steps": iterative_steps,
        "target": {"kind": target.kind, "value": target.value}, "input_size": list(size),
        "base": {"macs": before["macs"], "params": before["params"]},
    }
    after = {"macs": count_macs(pruned, size), "params": count_params(pruned)}
    meta.structure["achieved"] = {"macs_ratio": after["macs"] / before["macs"], "params_ratio": after["params"] / before["params"],
                                  "channel_fraction": fraction}
    meta.trained_with = {**meta.trained_with, "pruned_from": Path(checkpoint).name}
    save_checkpoint(out, pruned, meta)
    after["file_bytes"] = Path(out).stat().st_size
    return PruneResult(Path(out), before, after, fraction, dropped, result.skipped, meta.structure, pruned.eval())


def _tp_version(tp) -> str:
    """The installed distribution's version (the module's ``__version__`` says 1.6.0 in the 1.6.1 wheel)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch-pruning")
    except PackageNotFoundError:
        return str(getattr(tp, "__version__", "unknown"))


def _taylor_hook(data: str, calib_images: int, meta):
    """Before each pruning step: accumulate cross-entropy gradients on ``calib_images`` real images."""
    from edgekd.data import build_eval_transform, open_dataset

    if calib_images < 1:
        raise PruneError(f"--calib-images {calib_images} must be at least 1")
    dataset = open_dataset(data, "train", transform=build_eval_transform(None))
    n = min(calib_images, len(dataset))
    if n == 0:
        raise PruneError(f"--data {data} has no train images for the Taylor importance")
    ignore = int(getattr(dataset.info, "ignore_index", meta.ignore_index))

    def before_step(model: nn.Module) -> None:
        model.eval()  # eval: the BatchNorm running statistics must not move; gradients still flow
        for p in model.parameters():
            p.grad = None
        for i in range(n):
            image, mask = dataset[i]
            logits = model(meta.normalization.apply(image.unsqueeze(0)))
            loss = nn.functional.cross_entropy(logits, mask.unsqueeze(0).long(), ignore_index=ignore) / n
            loss.backward()

    return before_step
