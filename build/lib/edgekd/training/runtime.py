"""Where training runs: device, AMP, channels_last, DDP under torchrun, and seeding."""
from __future__ import annotations

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

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def setup_runtime(device: str = "auto") -> Runtime:
    """CUDA with AMP + channels_last when present; DDP when launched by torchrun (WORLD_SIZE>1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and world_size > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    cuda = dev.type == "cuda"
    return Runtime(dev, amp=cuda, channels_last=cuda, world_size=world_size, rank=rank)


def all_reduce_sum(array: np.ndarray, runtime: Runtime) -> np.ndarray:
    """Sum a numpy array (e.g. a confusion matrix) over DDP ranks."""
    if runtime.world_size == 1:
        return array
    t = torch.from_numpy(array).to(runtime.device)
    dist.all_reduce(t)
    return t.cpu().numpy()
