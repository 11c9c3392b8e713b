"""The knowledge-distillation loss catalogue (``edgekd.losses``), one module per family; the training
run that uses it is ``edgekd.training.distill``.

* ``response``   — ``kd`` (pixel-wise KD), ``dist`` (DIST)
* ``feature``    — ``fitnet`` (FitNet hint), ``at`` (attention transfer), ``cwd`` (channel-wise)
* ``relation``   — ``skd`` (SKD pair-wise affinity), ``cirkd`` (CIRKD cross-image relations)
* ``boundary``   — ``bkd`` (boundary-aware KD, band + body)
* ``supervised`` — ``ce`` (cross-entropy with the ground truth, optionally class-balanced),
  ``ohem`` (cross-entropy on the hard pixels)
* ``spec`` / ``combine`` — the "name(opts)@feature:weight" spec language, the loss registry
  and ``DistillationObjective``
* ``kd_metrics`` — metrics that judge a distillation run (KL, correlation, E_s/E_t, P_t/P_s)
"""
from edgekd.losses import kd_metrics
from edgekd.losses.boundary import BoundaryKDLoss, boundary_band
from edgekd.losses.combine import (
    DistillationObjective,
    build_objective,
    LossContext,
    LossEntry,
    build_loss,
    get_loss_entry,
    list_losses,
    loss_options,
    register_loss,
)
from edgekd.losses.feature import AttentionTransferLoss, ChannelWiseLoss, FitNetLoss
from edgekd.losses.relation import CrossImageRelationLoss, PairwiseAffinityLoss
from edgekd.losses.response import DISTLoss, PixelKDLoss
from edgekd.losses.spec import LossSpec, parse_specs
from edgekd.losses.supervised import CrossEntropyLoss, OHEMCrossEntropyLoss, class_weights_from_counts

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
    "LossContext",
    "LossEntry",
    "LossSpec",
    "OHEMCrossEntropyLoss",
    "PairwiseAffinityLoss",
    "PixelKDLoss",
    "boundary_band",
    "build_loss",
    "class_weights_from_counts",
    "get_loss_entry",
    "kd_metrics",
    "list_losses",
    "loss_options",
    "parse_specs",
    "register_loss",
]
