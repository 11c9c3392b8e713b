"""The pruning plan a pruned checkpoint carries, and its replay on the base architecture.

A pruned network is the base architecture with some residual blocks removed and some layers
made narrower. ``CheckpointMeta.structure`` records exactly that, as plain JSON:

``{"format": 1, "dropped_blocks": {"level3": [19, 18]}, "layers": {"level1_0.conv": {"kind": "conv",
"in_channels": 3, "out_channels": 16, "groups": 1}, ...}, "kept_channels": {...}, ...}``

Replay (``apply_structure``) needs no torch-pruning and runs no pickled code: it builds the base
model, deletes the dropped blocks (descending indices, so later names are the renumbered ones),
then resizes every listed layer in place — the same attributes and parameter shapes
torch-pruning's pruning functions leave behind. The weights are then loaded with strict key and
shape matching, so a plan that does not match its file is refused before anything is loaded.
``kept_channels`` (which parent channels survived) is provenance: replay does not need it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd

from edgekd.errors import EdgekdError

STRUCTURE_FORMAT = 1
_KNOWN_KEYS = {"format", "dropped_blocks", "layers", "kept_channels", "tool", "torch_pruning", "importance",
               "target", "achieved", "iterative_steps", "skipped", "groups", "input_size", "base"}


class StructureError(EdgekdError):
    pass


def layer_spec(module: nn.Module) -> dict[str, Any] | None:
    """The shape-defining attributes of a layer pruning can narrow; None for other modules."""
    if isinstance(module, _ConvNd):
        return {"kind": "conv", "in_channels": module.in_channels, "out_channels": module.out_channels,
                "groups": module.groups}
    if isinstance(module, _BatchNorm):
        return {"kind": "batchnorm", "num_features": module.num_features}
    if isinstance(module, nn.PReLU):
        return {"kind": "prelu", "num_parameters": module.num_parameters}
    if isinstance(module, nn.Linear):
        return {"kind": "linear", "in_features": module.in_features, "out_features": module.out_features}
    return None


def layer_specs(model: nn.Module) -> dict[str, dict[str, Any]]:
    return {name: spec for name, m in model.named_modules() if (spec := layer_spec(m)) is not None}


def changed_layers(base: nn.Module, pruned: nn.Module) -> dict[str, dict[str, Any]]:
    """The specs of ``pruned``'s layers that differ from the same-named layers of ``base``."""
    before = layer_specs(base)
    return {name: spec for name, spec in layer_specs(pruned).items() if before.get(name) != spec}


def drop_blocks(model: nn.Module, dropped: dict[str, list[int]]) -> None:
    """Remove blocks from ``nn.ModuleList`` children (indices in the unpruned list)."""
    for path, indices in dropped.items():
        blocks = _find(model, path, "dropped_blocks")
        if not isinstance(blocks, nn.ModuleList):
            raise StructureError(f"pruning plan drops blocks of {path!r}, which is a {type(blocks).__name__}, not a block list")
        bad = [i for i in indices if not isinstance(i, int) or not 0 <= i < len(blocks)]
        if bad or len(set(indices)) != len(indices) or len(indices) >= len(blocks):
            raise StructureError(f"pruning plan drops blocks {indices} of {path!r}, which has {len(blocks)}; "
                                 "the plan does not fit this architecture")
        keep = [b for i, b in enumerate(blocks) if i not in set(indices)]
        _set(model, path, nn.ModuleList(keep))


def _find(model: nn.Module, path: str, what: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        raise StructureError(f"pruning plan names {what} layer {path!r}, which {type(model).__name__} does not have; "
                             "the plan does not fit this architecture") from None


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _new_param(old: torch.Tensor | None, shape: tuple[int, ...], fill: float | None = None) -> nn.Parameter | None:
    if old is None:
        return None
    t = torch.empty(shape, dtype=old.dtype, device=old.device)
    t.fill_(fill) if fill is not None else nn.init.zeros_(t)
    return nn.Parameter(t, requires_grad=old.requires_grad)


def resize_layer(module: nn.Module, spec: dict[str, Any], name: str) -> None:
    """Narrow ``module`` in place to ``spec``; the new tensors are placeholders the weights overwrite."""
    kind = spec.get("kind")
    have = layer_spec(module)
    if have is None or have["kind"] != kind:
        raise StructureError(f"pruning plan says layer {name!r} is a {kind}, but it is a {type(module).__name__}; "
                             "the plan does not fit this architecture")
    try:
        if kind == "conv":
            i, o, g = int(spec["in_channels"]), int(spec["out_channels"]), int(spec["groups"])
            if min(i, o, g) < 1 or i % g or o % g:
                raise StructureError(f"pruning plan gives layer {name!r} in={i} out={o} groups={g}: not a valid convolution")
            module.in_channels, module.out_channels, module.groups = i, o, g
            k = tuple(module.weight.shape[2:])
            shape = (i, o // g, *k) if isinstance(module, _ConvTransposeNd) else (o, i // g, *k)
            module.weight = _new_param(module.weight, shape)
            module.bias = _new_param(module.bias, (o,))
        elif kind == "batchnorm":
            n = int(spec["num_features"])
            module.num_features = n
            module.weight, module.bias = _new_param(module.weight, (n,), 1.0), _new_param(module.bias, (n,))
            if module.running_mean is not None:
                module.running_mean = torch.zeros(n, dtype=module.running_mean.dtype)
                module.running_var = torch.ones(n, dtype=module.running_var.dtype)
        elif kind == "prelu":
            n = int(spec["num_parameters"])
            module.num_parameters = n
            module.weight = _new_param(module.weight, (n,), 0.25)
        else:  # linear
            i, o = int(spec["in_features"]), int(spec["out_features"])
            module.in_features, module.out_features = i, o
            module.weight, module.bias = _new_param(module.weight, (o, i)), _new_param(module.bias, (o,))
    except (KeyError, TypeError, ValueError) as err:
        raise StructureError(f"pruning plan entry for layer {name!r} is malformed ({type(err).__name__}: {err}); "
                             "re-run edgekd prune") from None


def apply_structure(model: nn.Module, structure: dict[str, Any]) -> nn.Module:
    """Replay a pruning plan on a freshly built base model (in place; also returned)."""
    if not isinstance(structure, dict) or structure.get("format") != STRUCTURE_FORMAT:
        got = structure.get("format") if isinstance(structure, dict) else type(structure).__name__
        raise StructureError(f"pruning plan format {got!r} is not {STRUCTURE_FORMAT}; written by another edgekd version?")
    unknown = set(structure) - _KNOWN_KEYS
    if unknown:
        raise StructureError(f"pruning plan has unknown keys {sorted(unknown)}; written by a newer edgekd?")
    drop_blocks(model, dict(structure.get("dropped_blocks") or {}))
    for name, spec in dict(structure.get("layers") or {}).items():
        resize_layer(_find(model, name, "resized"), spec, name)
    refresh_feature_channels(model)
    return model


def refresh_feature_channels(model: nn.Module) -> None:
    """Re-measure ``feature_channels`` (the feature-KD adapters read it) after channels were removed."""
    if not hasattr(model, "feature_channels") or not hasattr(model, "forward_features"):
        return
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            _, feats = model.forward_features(torch.zeros(1, 3, 64, 64))
    except RuntimeError as err:
        raise StructureError(f"the pruning plan gives a network that does not run ({str(err).splitlines()[0][:200]}); "
                             "the plan does not fit this architecture") from None
    finally:
        model.train(was_training)
    model.feature_channels = {k: int(v.shape[1]) for k, v in feats.items()}
