"""Distillation: the loss catalogue (``edgekd.distill.losses``), the objective that combines
named, weighted terms, and the metrics that judge a distillation run (``kd_metrics``).

Quick use::

    from edgekd.distill import DistillationObjective
    objective = DistillationObjective.from_models("ce,kd(tau=4):1,fitnet@stage3:0.5", student, teacher)
    total, terms = objective(student.forward_features(x), teacher.forward_features(x), labels)

Keep this module light: it only re-exports the loss package.
"""
from edgekd.distill.losses import (
    AttentionTransferLoss,
    BoundaryKDLoss,
    ChannelWiseLoss,
    CrossEntropyLoss,
    CrossImageRelationLoss,
    DISTLoss,
    DistillationObjective,
    build_objective,
    FitNetLoss,
    LossSpec,
    PairwiseAffinityLoss,
    PixelKDLoss,
    boundary_band,
    kd_metrics,
    list_losses,
    parse_specs,
    register_loss,
)

__all__ = [
    "AttentionTransferLoss",
    "BoundaryKDLoss",
    "ChannelWiseLoss",
    "CrossEntropyLoss",
    "CrossImageRelationLoss",
    "DISTLoss",
    "DistillationObjective",
    "build_objective",
    "FitNetLoss",
    "LossSpec",
    "PairwiseAffinityLoss",
    "PixelKDLoss",
    "boundary_band",
    "kd_metrics",
    "list_losses",
    "parse_specs",
    "register_loss",
]
