"""Supervised training of a teacher or a baseline student (cross-entropy with ignore index)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edgekd.checkpoint import CheckpointMeta, refuse_overwrite
from edgekd.errors import EdgekdError
from edgekd.evaluate import evaluate_model
from edgekd.models import create_model
from edgekd.training.crop import apply_crop_size, first_image_hw
from edgekd.training.loop import LoopConfig, TrainOutcome, run_loop
from edgekd.training.runtime import Runtime, all_reduce_sum, seed_everything, setup_runtime, sync_batchnorm


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


def train_loader(dataset, cfg, runtime: Runtime, sampler_type=DistributedSampler) -> DataLoader:
    """Seeded, full batches only, shared by training and distillation.

    One process shuffles with the same per-epoch permutation torchrun's ranks split between them
    (DistributedSampler, seed + epoch), so rank r's batch k holds the items r, r+N, ... of the one
    process's batch k when ``--batch-size`` is the per-rank batch and global batch = N × it.
    """
    per_rank = len(dataset) // runtime.world_size
    if per_rank < cfg.batch_size:
        raise EdgekdError(f"{cfg.data} split {cfg.train_split!r} has {len(dataset)} images, {per_rank} per rank: "
                          f"fewer than --batch-size {cfg.batch_size}")
    sampler = sampler_type(dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=True, seed=cfg.seed)
    return DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
        num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed), persistent_workers=cfg.workers > 0,
        multiprocessing_context=worker_context(cfg.workers),
    )


def worker_context(workers: int) -> str | None:
    """Spawn DataLoader workers: forking a process that already runs runtime threads can crash."""
    return "spawn" if workers > 0 else None


def base_meta(cfg: TrainConfig, model, train_set, method: str) -> CheckpointMeta:
    info = train_set.info
    norm = model.normalization
    num_classes = getattr(model, "num_classes", info.num_classes)
    # A head with one extra channel for the dataset's void label (ESPNet's CamVid head) keeps it.
    void = ["void"] if num_classes == info.num_classes + 1 else []
    return CheckpointMeta(
        arch=cfg.arch, arch_kwargs=dict(cfg.arch_kwargs), num_classes=num_classes,
        class_names=list(info.class_names) + void, ignore_index=info.ignore_index, input_size=list(cfg.crop_size),
        mean=list(norm.mean), std=list(norm.std), channel_order=norm.channel_order,
        trained_with={
            "method": method, "epochs": cfg.epochs, "seed": cfg.seed, "dataset": info.name,
            "dataset_split_hash": train_set.split_hash(), "config": _jsonable(asdict(cfg)),
        },
    )


def _jsonable(d: dict) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def make_evaluator(cfg: TrainConfig, val_set, runtime: Runtime):
    """Per-epoch evaluation on val, plus ``heldout_*`` on ``cfg.heldout_split`` when one is named."""
    heldout = None
    if cfg.heldout_split:
        from edgekd.data import build_eval_transform, open_dataset

        heldout = open_dataset(cfg.data, cfg.heldout_split, transform=build_eval_transform(None))

    def scores(model, dataset) -> dict:
        # Under torchrun each rank scores every N-th image; the confusion counts are summed over ranks.
        result = evaluate_model(model, model.normalization, dataset, input_size=cfg.eval_size,
                                max_images=cfg.val_images, device=runtime.device,
                                shard=(runtime.rank, runtime.world_size), reduce_sum=lambda a: all_reduce_sum(a, runtime))
        return {k: result[k] for k in ("miou", "pixel_accuracy", "boundary_f", "per_class_iou", "images")}

    def evaluate(model) -> dict:
        metrics = scores(model, val_set)
        if heldout is not None:
            held = scores(model, heldout)
            metrics.update({"heldout_split": cfg.heldout_split, "heldout_miou": held["miou"],
                            "heldout_per_class_iou": held["per_class_iou"], "heldout_images": held["images"]})
        return metrics

    return evaluate


def wrap_ddp(model, runtime: Runtime):
    if runtime.world_size == 1:
        return model, (lambda m: m)
    ids = [runtime.device.index] if runtime.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids), (lambda m: m.module)


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
