"""Where training runs: device, AMP, channels_last, DDP under torchrun, and seeding."""
from __future__ import annotations

import atexit
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp: bool
    channels_last: bool
    world_size: int
    rank: int
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """The first process on this node: the one that builds node-local files (the teacher cache)."""
        return self.local_rank == 0


def is_main_process() -> bool:
    """Rank 0 of a torchrun launch (or a plain run): the CLI prints its summary only there."""
    return int(os.environ.get("RANK", "0")) == 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_runtime(device: str = "auto") -> Runtime:
    """CUDA with AMP + channels_last when present; DDP when launched by torchrun (WORLD_SIZE>1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and world_size > 1:
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend_for(dev))
        atexit.register(_leave_group)
    cuda = dev.type == "cuda"
    return Runtime(dev, amp=cuda, channels_last=cuda, world_size=world_size, rank=rank, local_rank=local)


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes (NCCL has no CPU path)."""
    return "nccl" if device.type == "cuda" else "gloo"


def _leave_group() -> None:
    """Destroy the process group at exit (torch warns about, and may hang on, one left open)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(runtime: Runtime) -> None:
    """Wait for every rank (a no-op in a one-process run)."""
    if runtime.world_size > 1:
        dist.barrier()


def sync_batchnorm(model: torch.nn.Module, runtime: Runtime) -> torch.nn.Module:
    """SyncBatchNorm under multi-GPU DDP, so BatchNorm sees the global batch as one process would.

    torch's SyncBatchNorm runs on GPUs only; between CPU (gloo) processes each rank's BatchNorm
    normalises its own share of the batch (docs/distributed.md says what that changes).
    """
    if runtime.world_size > 1 and runtime.device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def all_reduce_mean(values: dict[str, float], runtime: Runtime) -> dict[str, float]:
    """Average per-rank scalars (an epoch's mean losses) over the ranks: the curve of the global batch."""
    if runtime.world_size == 1 or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=runtime.device)
    dist.all_reduce(t)
    return {k: float(v) / runtime.world_size for k, v in zip(keys, t.tolist())}


def all_reduce_sum(array: np.ndarray, runtime: Runtime) -> np.ndarray:
    """Sum a numpy array (e.g. a confusion matrix) over DDP ranks."""
    if runtime.world_size == 1:
        return array
    t = torch.from_numpy(np.ascontiguousarray(array)).to(runtime.device)
    dist.all_reduce(t)
    return t.cpu().numpy()


def grad_all_reduce(module: torch.nn.Module | None, runtime: Runtime) -> None:
    """Average the gradients of parameters DDP does not own (distillation adapters) over the ranks."""
    if module is None or runtime.world_size == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(runtime.world_size)
