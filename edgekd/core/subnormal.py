"""Subnormal (denormal) floats: which values are subnormal, and whether this thread flushes them.

Ground floor because three layers need it: the export pipeline flushes subnormal weights before
export, the doctor counts them, and its fix re-times a model with them flushed. Subnormals cost a
slow micro-code path on x86 unless FTZ/DAZ is on (docs/doctor.md, the `subnormal-weights` check).
"""
from __future__ import annotations

import torch

# (integer view dtype, exponent bits, mantissa bits) per float dtype
_BITS = {
    torch.float32: (torch.int32, 0x7F800000, 0x007FFFFF),
    torch.float64: (torch.int64, 0x7FF0000000000000, 0x000FFFFFFFFFFFFF),
    torch.float16: (torch.int16, 0x7C00, 0x03FF),
    torch.bfloat16: (torch.int16, 0x7F80, 0x007F),
}


def subnormal_mask(tensor: torch.Tensor) -> torch.Tensor:
    """True where the value is subnormal: exponent bits all zero, mantissa non-zero.

    Read from the bits, not by comparing values: when the calling thread runs with DAZ
    (denormals-are-zero, e.g. after ``torch.set_flush_denormal(True)`` or an OpenVINO inference with
    ``CPU_DENORMALS_OPTIMIZATION``) the CPU treats subnormal operands as 0, so ``x != 0`` misses them.
    """
    int_dtype, exponent, mantissa = _BITS[tensor.dtype]
    bits = tensor.detach().contiguous().view(int_dtype)
    return ((bits & exponent) == 0) & ((bits & mantissa) != 0)


def denormals_flushed() -> bool:
    """Whether the calling thread runs with DAZ/FTZ on (a subnormal then compares equal to zero).

    ``torch.set_flush_denormal`` returns whether the mode is supported, not the previous mode, so
    code that changes the mode probes it with this first and restores it afterwards.
    """
    return bool((torch.tensor([1e-40], dtype=torch.float32) == 0).item())

# the float dtypes whose bits ``subnormal_mask`` can read
FLOAT_DTYPES = tuple(_BITS)
