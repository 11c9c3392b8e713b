"""Supervised training of a teacher or a baseline student (cross-entropy with ignore index)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, DistributedSampler

from edgekd.checkpoint import refuse_overwrite
from edgekd.errors import EdgekdError
from edgekd.models import create_model
from edgekd.training.crop import apply_crop_size, first_image_hw
from edgekd.training.loop import LoopConfig, TrainOutcome, run_loop
from edgekd.training.run_parts import base_meta, make_evaluator, train_loader, wrap_ddp
from edgekd.training.runtime import Runtime, seed_everything, setup_runtime, sync_batchnorm


@dataclass
class TrainConfig:
    arch: str
    data: str
    out: str
    epochs: int = 10
    batch_size: int = 8
    lr: float = 0.01
    optimizer: str = "sgd"
    schedule: str = "poly"
    weight_decay: float = 1e-4
    # None: 360x480 clipped to the train images' size (edgekd.training.crop says why); set before training
    crop_size: tuple[int, int] | None = None
    scale_range: tuple[float, float] = (0.5, 2.0)
    eval_size: tuple[int, int] | None = None
    val_images: int | None = None
    seed: int = 0
    workers: int = 0
    resume: bool = False
    force: bool = False
    device: str = "auto"
    max_steps_per_epoch: int | None = None
    arch_kwargs: dict = field(default_factory=dict)
    train_split: str = "train"
    val_split: str = "val"
    # A second validation set the model never trains on (e.g. a held-out drive: ``train:0006R0``),
    # reported beside val every epoch as ``heldout_miou``.
    heldout_split: str | None = None
    # Fine-tuning a pretrained network: keep its BatchNorm statistics (small, augmented batches
    # would overwrite them) and train only the affine parameters and the convolutions.
    freeze_bn: bool = False
    warmup_steps: int = 0

    def loop_config(self) -> LoopConfig:
        return LoopConfig(
            epochs=self.epochs, lr=self.lr, optimizer=self.optimizer, schedule=self.schedule,
            weight_decay=self.weight_decay, max_steps_per_epoch=self.max_steps_per_epoch,
            freeze_bn=self.freeze_bn, warmup_steps=self.warmup_steps,
        )


def build_loaders(cfg: TrainConfig, runtime: Runtime):
    """Train loader with joint augmentation; val dataset at native size (or ``eval_size``)."""
    from edgekd.data import build_eval_transform, build_train_transform, open_dataset

    probe = open_dataset(cfg.data, cfg.train_split)
    apply_crop_size(cfg, first_image_hw(probe))
    train_tf = build_train_transform(
        crop_size=tuple(cfg.crop_size), scale_range=tuple(cfg.scale_range), ignore_index=probe.info.ignore_index, seed=cfg.seed
    )
    train_set = open_dataset(cfg.data, cfg.train_split, transform=train_tf)
    val_set = open_dataset(cfg.data, cfg.val_split, transform=build_eval_transform(None))
    loader = train_loader(_SeededAugment(train_set, cfg.seed), cfg, runtime, sampler_type=EpochSampler)
    return loader, train_set, val_set


class EpochSampler(DistributedSampler):
    """A DistributedSampler that yields (epoch, index), so an item's augmentation can depend on both."""

    def __iter__(self):
        return ((self.epoch, i) for i in super().__iter__())


class _SeededAugment(Dataset):
    """Augments item i of epoch e with a generator seeded by (seed, e, i).

    The crops then do not depend on which rank or worker loads the item, nor on how many items it
    loaded before: N torchrun processes see the augmentations one process would, and a resumed run
    those of the uninterrupted one.
    """

    def __init__(self, dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        from edgekd.data.folder import to_tensors

        epoch, index = key
        image, mask = self.dataset.read_pair(index)
        rng = np.random.default_rng([self.seed, epoch, index])
        for transform in self.dataset.transform.transforms:
            image, mask = transform(image, mask, rng)
        return to_tensors(image, mask)


def train_supervised(cfg: TrainConfig, progress=None) -> TrainOutcome:
    """Train ``cfg.arch`` on ``cfg.data`` with cross-entropy; checkpoint + train state each epoch."""
    out = Path(cfg.out)
    if out.suffix != ".safetensors":
        raise EdgekdError(f"--out {cfg.out!r} must end in .safetensors")
    refuse_overwrite(out, force=cfg.force, resume=cfg.resume)
    seed_everything(cfg.seed)
    runtime = setup_runtime(cfg.device)
    loader, train_set, val_set = build_loaders(cfg, runtime)
    model = create_model(cfg.arch, num_classes=train_set.info.num_classes, **cfg.arch_kwargs).to(runtime.device)
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    normalization = model.normalization
    model = sync_batchnorm(model, runtime)
    ignore = train_set.info.ignore_index
    meta = base_meta(cfg, model, train_set, method="supervised")
    meta.trained_with["losses"] = {"ce": 1.0}
    model, unwrap = wrap_ddp(model, runtime)

    def loss_fn(m, batch):
        images, masks = batch
        x = normalization.apply(images)
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = m(x)
        return F.cross_entropy(logits.float(), masks, ignore_index=ignore), {}

    return run_loop(
        model=model, extra_modules=None, loss_fn=loss_fn, train_loader=loader,
        evaluate_fn=make_evaluator(cfg, val_set, runtime), meta=meta, out=out, cfg=cfg.loop_config(),
        runtime=runtime, resume=cfg.resume, progress=progress, unwrap=unwrap,
    )
