"""Datasets, joint image/mask transforms and synthetic AR scenes.

``open_dataset`` reads CamVid-layout (``train/ trainannot/ ...``) and generic folder-layout
(``images/ masks/`` + ``train.txt``/``val.txt``) datasets, described by an optional
``dataset.yaml``; see ``edgekd.data.layouts`` for the exact rules. ``generate_synthetic_dataset``
writes synthetic AR scenes in the folder layout (``edgekd.data.scene`` documents the classes).
"""
from edgekd.data.folder import SegDataset, dataset_splits, open_dataset
from edgekd.data.info import CAMVID_CLASSES, CAMVID_IGNORE_INDEX, DataError, DatasetInfo
from edgekd.data.io import read_image, read_mask
from edgekd.data.scene import SYNTHETIC_CLASSES, SYNTHETIC_IGNORE_INDEX, SYNTHETIC_PALETTE, render_scene
from edgekd.data.synthetic import (
    CAMERA_MOTIONS,
    default_synthetic_root,
    generate_sequence,
    generate_synthetic_dataset,
    render_sequence,
)
from edgekd.data.transforms import Compose, build_eval_transform, build_train_transform, parse_size

__all__ = [
    "SegDataset", "DataError", "open_dataset", "DatasetInfo", "dataset_splits",
    "build_train_transform", "build_eval_transform", "Compose", "parse_size",
    "generate_synthetic_dataset", "generate_sequence", "render_sequence", "render_scene",
    "SYNTHETIC_CLASSES", "SYNTHETIC_IGNORE_INDEX", "SYNTHETIC_PALETTE", "default_synthetic_root",
    "CAMVID_CLASSES", "CAMVID_IGNORE_INDEX", "CAMERA_MOTIONS", "read_image", "read_mask",
]
