"""Model zoo: a registry of segmentation students and teachers sharing one contract (see base.py)."""
from edgekd.models.base import IMAGENET, Normalization, SegmentationModel, upsample_to
from edgekd.models.registry import (
    ModelEntry,
    UnknownModelError,
    create_model,
    get_builder,
    list_models,
    register_model,
)

__all__ = [
    "IMAGENET", "Normalization", "SegmentationModel", "upsample_to", "ModelEntry",
    "UnknownModelError", "create_model", "get_builder", "list_models", "register_model",
]
