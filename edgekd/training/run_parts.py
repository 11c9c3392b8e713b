"""What both training runs (``edgekd train`` and ``edgekd distill``) are built from.

The seeded train loader, the checkpoint metadata, the per-epoch evaluator (val and the held-out
split) and the DDP wrapper, over the config both share (``TrainConfig``; ``DistillConfig``
extends it): one place, so a supervised baseline and a distilled student are trained, described and
scored the same way.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, DistributedSampler

from edgekd.checkpoint import CheckpointMeta
from edgekd.errors import EdgekdError
from edgekd.evaluate import evaluate_model
from edgekd.training.runtime import Runtime, all_reduce_sum

if TYPE_CHECKING:  # the config both runs share lives with the supervised run; DistillConfig extends it
    from edgekd.training.supervised import TrainConfig


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
