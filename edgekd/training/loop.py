"""The training loop shared by supervised training and distillation.

One epoch = one pass over the loader; after each epoch the loop evaluates on val, saves the
weights checkpoint (best-so-far replaces nothing: the file is the last epoch, val mIoU in its
metadata) and the training state beside it, so an interrupted run resumes at the next epoch.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from edgekd.checkpoint import CheckpointMeta, load_train_state, save_checkpoint, save_train_state
from edgekd.core.subnormal import denormals_flushed
from edgekd.errors import EdgekdError
from edgekd.training.runtime import Runtime, all_reduce_mean, grad_all_reduce

LossFn = Callable[[nn.Module, tuple], tuple[torch.Tensor, dict[str, float]]]
"""loss_fn(model, batch) with the batch's tensors already on the device."""


@dataclass
class LoopConfig:
    epochs: int
    lr: float
    optimizer: str = "sgd"  # sgd | adamw
    schedule: str = "poly"  # poly | cosine
    weight_decay: float = 1e-4
    momentum: float = 0.9
    warmup_steps: int = 0
    max_steps_per_epoch: int | None = None
    clip_grad: float | None = None
    freeze_bn: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise EdgekdError(f"optimizer {self.optimizer!r} is not one of sgd, adamw")
        if self.schedule not in ("poly", "cosine"):
            raise EdgekdError(f"schedule {self.schedule!r} is not one of poly, cosine")
        if self.epochs < 1 or self.lr <= 0:
            raise EdgekdError(f"epochs ({self.epochs}) must be ≥ 1 and lr ({self.lr}) > 0")


@dataclass
class TrainOutcome:
    checkpoint: Path
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    wall_s: float = 0.0  # the training loop (epochs + their validation), not the setup before it
    teacher_cache: list[dict] = field(default_factory=list)  # distill: TeacherCache.describe() per cached teacher


def make_optimizer(params, cfg: LoopConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_schedule(opt: torch.optim.Optimizer, cfg: LoopConfig, total_steps: int):
    """Poly (power 0.9) or cosine decay per step, after an optional linear warm-up."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, step / max(1, total_steps))
        if cfg.schedule == "poly":
            return (1 - progress) ** 0.9
        return 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def train_state_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name.replace(".safetensors", ".train_state.pt"))


def run_loop(
    *, model: nn.Module, extra_modules: nn.Module | None, loss_fn: LossFn, train_loader: DataLoader,
    evaluate_fn: Callable[[nn.Module], dict], meta: CheckpointMeta, out: Path, cfg: LoopConfig,
    runtime: Runtime, resume: bool = False, progress=None, unwrap: Callable[[nn.Module], nn.Module] = lambda m: m,
) -> TrainOutcome:
    """Train ``model`` (and ``extra_modules``, e.g. distillation adapters) with ``loss_fn``."""
    params = list(model.parameters()) + (list(extra_modules.parameters()) if extra_modules is not None else [])
    opt = make_optimizer(params, cfg)
    steps_per_epoch = len(train_loader) if cfg.max_steps_per_epoch is None else min(len(train_loader), cfg.max_steps_per_epoch)
    sched = make_schedule(opt, cfg, cfg.epochs * steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.amp)
    start_epoch, history = 0, []
    state_file = train_state_path(out)
    if resume and state_file.is_file():
        start_epoch, history = _restore(state_file, model, extra_modules, opt, sched, scaler, unwrap)
    t0 = time.perf_counter()
    task = progress.add_task("train", total=(cfg.epochs - start_epoch) * steps_per_epoch) if progress else None
    flushed_before = denormals_flushed()  # set per epoch below; restored even when an epoch raises
    try:
        for epoch in range(start_epoch, cfg.epochs):
            if hasattr(train_loader.sampler, "set_epoch"):
                train_loader.sampler.set_epoch(epoch)
            model.train()
            if cfg.freeze_bn:
                freeze_batchnorm(model)
            if runtime.device.type == "cpu":
                # Subnormal weights (CGNet's checkpoint carries 256 k of them) make x86 arithmetic ~20× slower;
                # flushing them changes outputs by < 1e-4. Set every epoch: evaluation resets the flag.
                torch.set_flush_denormal(True)
            epoch_start = time.perf_counter()
            epoch_logs = _run_epoch(model, extra_modules, loss_fn, train_loader, opt, sched, scaler, cfg, runtime, steps_per_epoch, progress, task)
            epoch_logs["train_seconds"] = time.perf_counter() - epoch_start
            metrics = evaluate_fn(unwrap(model))
            history.append({"epoch": epoch + 1, **epoch_logs, **{f"val_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))},
                            "epoch_seconds": time.perf_counter() - epoch_start})
            if runtime.is_main:
                meta.metrics = {**metrics, "epoch": epoch + 1}
                meta.trained_with["epochs_completed"] = epoch + 1
                save_checkpoint(out, unwrap(model), meta)
                save_train_state(state_file, _state(epoch + 1, history, unwrap(model), extra_modules, opt, sched, scaler))
                line = f"epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(_log_field(k, v) for k, v in history[-1].items() if k != "epoch")
                if progress:
                    progress.console.print(line, markup=False, highlight=False)
                else:  # background runs: one line per epoch in the log (stderr: stdout may carry --json)
                    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {out.name} {line}", file=sys.stderr, flush=True)
    finally:
        torch.set_flush_denormal(flushed_before)
    return TrainOutcome(out, cfg.epochs - start_epoch, history, time.perf_counter() - t0)


def freeze_batchnorm(model: nn.Module) -> None:
    """Put every BatchNorm in eval mode: its running statistics stay those of the pretrained network."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


def _run_epoch(model, extra, loss_fn, loader, opt, sched, scaler, cfg, runtime, steps, progress, task) -> dict:
    totals: dict[str, float] = {}
    batches = iter(loader)
    try:
        _train_steps(batches, model, extra, loss_fn, opt, sched, scaler, cfg, runtime, steps, progress, task, totals)
    except BaseException:
        _stop_workers(batches)
        raise
    n = max(1, min(steps, len(loader)))
    # Under torchrun each rank saw its share of the global batch: the logged curve is the ranks' mean.
    return all_reduce_mean({f"train_{k}": v / n for k, v in totals.items()}, runtime)


def _stop_workers(batches) -> None:
    """Shut a failed epoch's DataLoader workers down now. The error's traceback keeps the iterator
    alive, and its workers would otherwise be reaped whenever the garbage collector gets to it — in
    the middle of later work, where a dead worker's signal handler can take the process down."""
    shutdown = getattr(batches, "_shutdown_workers", None)
    if shutdown is not None:
        shutdown()


def _train_steps(batches, model, extra, loss_fn, opt, sched, scaler, cfg, runtime, steps, progress, task, totals) -> None:
    for step, batch in enumerate(batches):
        if step >= steps:
            break
        batch = tuple(t.to(runtime.device, non_blocking=True) for t in batch)
        with torch.autocast(runtime.device.type, enabled=runtime.amp):
            loss, logs = loss_fn(model, batch)
        if not torch.isfinite(loss):
            raise EdgekdError(f"loss became {loss.item()} at step {step}; lower --lr (now {cfg.lr})")
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        grad_all_reduce(extra, runtime)  # DDP averages the model's gradients; the adapters' are ours to average
        if cfg.clip_grad:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.clip_grad)
        scaler.step(opt)
        scaler.update()
        sched.step()
        for k, v in {"loss": loss.item(), **logs}.items():
            totals[k] = totals.get(k, 0.0) + v
        if progress:
            progress.update(task, advance=1, description=f"train loss {loss.item():.3f}")


def _state(epoch, history, model, extra, opt, sched, scaler) -> dict:
    return {
        "epoch": epoch, "history_json": __import__("json").dumps(history), "model": model.state_dict(),
        "extra": extra.state_dict() if extra is not None else {}, "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(), "scaler": scaler.state_dict(),
        "rng_torch": torch.get_rng_state(),
    }


def _restore(path, model, extra, opt, sched, scaler, unwrap) -> tuple[int, list]:
    import json

    state = load_train_state(path)
    unwrap(model).load_state_dict(state["model"])
    if extra is not None and state["extra"]:
        extra.load_state_dict(state["extra"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_torch"])
    return int(state["epoch"]), json.loads(state["history_json"])


def _log_field(key: str, value: float) -> str:
    """One ``key value`` of an epoch line; mIoU in percent, the unit eval, bench and compare print
    (the checkpoint's metrics keep fractions)."""
    if key.endswith("miou"):
        return f"{key} {100.0 * value:.2f} %"
    return f"{key} {value:.4g}"
