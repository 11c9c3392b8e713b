"""Structured pruning: ``prune_checkpoint`` (edgekd.prune.api) and the plan replay (edgekd.models.structure).

The replay half is imported by ``edgekd.checkpoint`` to rebuild pruned checkpoints and needs no
torch-pruning; the pruning half imports torch-pruning when it runs.
"""
from __future__ import annotations

from typing import Any

__all__ = ["PruneTarget", "PruneResult", "prune_checkpoint", "apply_structure"]


def __getattr__(name: str) -> Any:
    if name in ("PruneTarget", "PruneResult", "prune_checkpoint"):
        from edgekd.prune import api

        return getattr(api, name)
    if name == "apply_structure":
        from edgekd.models.structure import apply_structure

        return apply_structure
    raise AttributeError(name)
