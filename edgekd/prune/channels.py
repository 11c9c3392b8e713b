"""One structured channel-pruning pass with torch-pruning's dependency graph (DepGraph).

Why our own loop over ``DependencyGraph.get_all_groups`` instead of ``tp.pruner.MetaPruner``:
the segmentation zoo concatenates a stage's residual stream with itself and with the injected
image (CGNet: ``cat([blocks(x), x, image])``; a CG block's output is ``cat(F_loc(y), F_sur(y))``
of one reduced tensor ``y``), so one kept channel of the reduced conv is *two* channels of the
stream. MetaPruner ranks and removes stream channels one by one, which leaves the two halves of
the concatenation with different widths (the ``running_mean should contain 35 elements not 83``
crash described in docs/prune.md). Here each group's *channel coupling* is measured first — which root channels
fall together when one is removed — and channels are removed in whole coupled sets; a group whose
coupling is irregular, or whose removal still breaks the forward pass, is left whole and reported.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from edgekd.errors import EdgekdError

ROOT_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


class PruneError(EdgekdError):
    pass


@dataclass
class PassResult:
    """What one pass removed: per group root, the channels before and after, and the groups left whole."""

    groups: dict[str, dict] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


class _GroupBroke(Exception):
    def __init__(self, root: str, reason: str) -> None:
        super().__init__(reason)
        self.root, self.reason = root, reason


def output_layer(model: nn.Module) -> nn.Module:
    """The layer that produces the logits (its output channels are the classes: never pruned)."""
    named = [(n, m) for n, m in model.named_modules() if isinstance(m, ROOT_TYPES)]
    heads = [m for n, m in named if n == "classifier" or n.startswith("classifier.")]
    if heads:
        return heads[-1]
    if not named:
        raise PruneError(f"{type(model).__name__} has no convolution or linear layer to prune")
    return named[-1][1]


def build_graph(model: nn.Module, example: torch.Tensor):
    """torch-pruning's dependency graph of ``model``; a failure names the layer it happened in."""
    import torch_pruning as tp

    current: list[str] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, name=name: current.append(name))
             for name, m in model.named_modules() if name]
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example)
    except Exception as err:  # noqa: BLE001 — any tracing failure becomes one line naming the layer
        where = current[-1] if current else "(before the first layer)"
        raise PruneError(f"torch-pruning cannot trace {type(model).__name__}: it failed in layer {where!r} "
                         f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}); "
                         "make that layer's forward traceable (plain tensor ops) or pass a model without it") from None
    finally:
        for h in hooks:
            h.remove()


def _plain(idxs) -> list[int]:
    return [int(getattr(i, "idx", i)) for i in idxs]


def coupling(DG, root: nn.Module, fn, n: int) -> int | None:
    """How many root channels fall together (k, with channel i coupled to i + j·n/k); None if irregular."""
    def closure(i: int) -> list[int]:
        g = DG.get_pruning_group(root, fn, [i])
        out = set()
        for dep, idxs in g:
            if dep.target.module is root and dep.handler == fn:  # bound methods: compare with ==
                out.update(_plain(idxs))
        return sorted(out)

    first = closure(0)
    k = len(first)
    if n % k or first != [j * (n // k) for j in range(k)]:
        return None
    if n // k > 1 and closure(1) != [1 + j * (n // k) for j in range(k)]:
        return None
    return k


def _check_forward(model: nn.Module, probe: torch.Tensor, root: str) -> None:
    try:
        with torch.no_grad():
            model.eval()(probe)
    except Exception as err:  # noqa: BLE001 — a broken group is reported and left whole, never a crash
        raise _GroupBroke(root, f"removing its channels breaks the forward pass ({str(err).splitlines()[0][:120]})") from None


def prune_step(model: nn.Module, DG, names: dict, originals: dict[str, int], fraction: float, importance,
               skip: dict[str, str], result: PassResult, probe: torch.Tensor) -> None:
    """Remove ``fraction`` of each prunable group's original channels (whole coupled sets, lowest importance first)."""
    head = output_layer(model)
    for group in DG.get_all_groups(ignored_layers=[head], root_module_types=ROOT_TYPES):  # lazily, as MetaPruner does
        root, fn = group[0].dep.target.module, group[0].dep.handler
        name = names[root]
        if name in skip:
            continue
        n = len(group[0].idxs)
        try:
            k = coupling(DG, root, fn, n)
        except Exception as err:  # noqa: BLE001 — torch-pruning could not follow this group: leave it whole
            skip[name] = f"torch-pruning cannot map its channels ({type(err).__name__}: {str(err)[:100]})"
            continue
        if k is None:
            skip[name] = "its channels are coupled irregularly (e.g. a split-and-sum branch), so they cannot be removed in whole sets"
            continue
        original = originals.get(name, n) // k
        keep = max(1, round(original * (1.0 - fraction)))
        remove = n // k - keep
        if remove <= 0:
            continue
        scores = importance(group)
        if scores is None:
            skip[name] = "the importance criterion has nothing to score in this group (no BatchNorm for --importance bn)"
            continue
        scores = scores.detach().float().flatten()
        if scores.numel() < n:
            skip[name] = f"the importance criterion scored {scores.numel()} of its {n} channels"
            continue
        # torch-pruning sizes the score vector like the group's first scored layer (a depthwise conv's
        # in+out entries can make it longer); every score is scattered to a root index < n, so the rest is zero
        per_set = scores[:n].view(k, n // k).sum(0)
        lowest = torch.argsort(per_set)[:remove].tolist()
        idxs = sorted(p + j * (n // k) for p in lowest for j in range(k))
        try:
            DG.get_pruning_group(root, fn, idxs).prune()
        except Exception as err:  # noqa: BLE001 — the model may be half-cut: the pass restarts without this group
            raise _GroupBroke(name, f"torch-pruning failed while cutting it ({type(err).__name__}: {str(err)[:100]})") from None
        _check_forward(model, probe, name)
        entry = result.groups.setdefault(name, {"channels_before": original * k, "coupled": k,
                                                 "members": sorted({names[d.target.module] for d, _ in group
                                                                    if d.target.module in names})})
        entry["channels_after"] = (n // k - remove) * k


def prune_pass(base: nn.Module, fraction: float, importance_fn: Callable[[], object], *, steps: int = 1,
               example: torch.Tensor, probe: torch.Tensor, skip: dict[str, str],
               before_step: Callable[[nn.Module], None] | None = None) -> tuple[nn.Module, PassResult]:
    """A pruned copy of ``base`` with ``fraction`` of each group's channels removed over ``steps`` steps.

    ``skip`` (root name → reason) is shared between passes: a group that broke the forward pass
    once is left whole from then on, and the pass restarts from ``base``.
    """
    if fraction <= 0.0:
        return copy.deepcopy(base), PassResult(skipped=dict(skip))
    originals = {}
    for name, m in base.named_modules():
        if isinstance(m, ROOT_TYPES):
            originals[name] = m.out_features if isinstance(m, nn.Linear) else m.out_channels
    while True:
        model = copy.deepcopy(base)
        result = PassResult()
        try:
            for step in range(1, steps + 1):
                if before_step is not None:
                    before_step(model)
                DG = build_graph(model, example)
                names = {m: n for n, m in model.named_modules()}
                prune_step(model, DG, names, originals, fraction * step / steps, importance_fn(), skip, result, probe)
                for p in model.parameters():
                    p.grad = None
            result.skipped = dict(skip)
            return model, result
        except _GroupBroke as broke:
            skip[broke.root] = broke.reason
