"""The PyTorch device a command trains or evaluates on (``--torch-device``), checked before any work.

``--device`` names a device *profile* everywhere in edgekd (bench, doctor, estimate, compare); the
PyTorch device has its own flag so one flag name never means two things. A bad or unavailable
device is a one-line error here, not a traceback from deep inside torch.
"""
from __future__ import annotations

import re

from edgekd.errors import EdgekdError

_TORCH_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def is_torch_device_name(text: str) -> bool:
    return bool(_TORCH_DEVICE.match(text.strip()))


def check_torch_device(text: str) -> str:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` → the same string, or an EdgekdError
    saying what is wrong (a device profile name, CUDA on a CPU-only torch, a GPU index out of range)."""
    import torch

    name = text.strip()
    if not is_torch_device_name(name):
        raise EdgekdError(f"torch device {text!r} is not one of auto, cpu, cuda, cuda:N, mps "
                          "(device profiles such as jetson-orin-nano go to bench/doctor/estimate --device)")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EdgekdError(f"torch device {name!r} needs CUDA, but this PyTorch build "
                              f"({torch.__version__}) sees no CUDA GPU; use --torch-device cpu (or auto)")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise EdgekdError(f"torch device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here "
                              f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise EdgekdError("torch device 'mps' needs Apple-silicon macOS; use --torch-device cpu (or auto)")
    return name
