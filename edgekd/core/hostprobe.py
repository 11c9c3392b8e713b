"""Peak figures of *this* machine, measured by a short probe and cached per CPU.

The ``host`` profile's roofline peaks must describe the CPU the bench runs on, which changes
between sessions on a cloud VM (docs/bench.md: an Intel Xeon with AMX one day, an AMD EPYC with AVX2
only the next). So ``peak_fp32_tflops``, ``peak_bf16_tflops``, ``peak_int8_tops`` and
``memory_bandwidth_gbs`` may be ``detect`` in a profile: the first use on a machine runs this
probe (about 2-4 s) and caches the result under ``$EDGEKD_CACHE/hostprobe/<key>.json``, keyed by
CPU model, ISA flags and core count, so another CPU is probed afresh and never inherits these.

What is measured (best of a few repeats: a peak is the best the machine did, and the load
average at probe time is stored beside it, since other jobs lower it):

- FP32 GEMM: ``torch.matmul`` 2048×2048 float32 on all cores (oneDNN / MKL);
- BF16 GEMM: the same in bfloat16, only when the CPU has AVX512-BF16 or AMX-BF16 (else None:
  emulated bf16 is not a peak worth a roofline);
- INT8 GEMM: ``torch.ops.quantized.linear`` u8×s8 (oneDNN engine), only with VNNI or AMX-INT8;
- memory copy: ``numpy.copyto`` of a 256 MiB buffer, counted as bytes read + written (STREAM's
  convention for "copy").

Without PyTorch the GEMMs are None with the reason; nothing falls back to another machine's figure.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekd.core.host import cpu_features, cpu_model, load_average

PROBE_KEYS = ("peak_fp32_tflops", "peak_bf16_tflops", "peak_int8_tops", "memory_bandwidth_gbs")
PROBE_VERSION = 1


def probe_key() -> str:
    """What identifies a CPU for the cache: model name, ISA flags, logical cores, probe version."""
    feats = cpu_features().get("isa") or []
    text = json.dumps([cpu_model(), sorted(feats), os.cpu_count(), PROBE_VERSION])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path() -> Path:
    from edgekd.paths import cache_dir

    return cache_dir() / "hostprobe" / f"{probe_key()}.json"


def _best_rate(fn: Callable[[], Any], work: float, repeats: int) -> float:
    fn()  # first call: allocation, kernel selection, thread pool start
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = max(best, work / (time.perf_counter() - t0))
    return best


def _gemm_peaks(isa: set[str], size: int, repeats: int) -> dict[str, Any]:
    try:
        import torch
    except ImportError as err:
        reason = f"PyTorch not importable here ({err}); GEMM peaks unknown"
        return {"peak_fp32_tflops": None, "peak_bf16_tflops": None, "peak_int8_tops": None, "gemm_reason": reason}
    torch.set_num_threads(os.cpu_count() or 1)
    flops = 2.0 * size**3
    out: dict[str, Any] = {"threads": torch.get_num_threads(), "gemm_size": size}
    a = torch.randn(size, size)
    out["peak_fp32_tflops"] = _best_rate(lambda: a @ a, flops, repeats) / 1e12
    if isa & {"avx512_bf16", "amx_bf16", "bf16"}:
        b = a.to(torch.bfloat16)
        out["peak_bf16_tflops"] = _best_rate(lambda: b @ b, flops, repeats) / 1e12
    else:
        out["peak_bf16_tflops"], out["bf16_reason"] = None, "no native bf16 (AVX512-BF16/AMX-BF16) on this CPU"
    out.update(_int8_peak(torch, isa, size, repeats))
    return out


def _int8_peak(torch: Any, isa: set[str], size: int, repeats: int) -> dict[str, Any]:
    if not isa & {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm"}:
        return {"peak_int8_tops": None, "int8_reason": "no INT8 dot-product instructions (VNNI/AMX-INT8/dot) on this CPU"}
    try:
        import warnings

        torch.backends.quantized.engine = "onednn" if "onednn" in torch.backends.quantized.supported_engines else \
            torch.backends.quantized.supported_engines[-1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = torch.quantize_per_tensor(torch.randn(size, size), 0.05, 64, torch.quint8)
            w = torch.quantize_per_tensor(torch.randn(size, size), 0.05, 0, torch.qint8)
        packed = torch.ops.quantized.linear_prepack(w, None)
        rate = _best_rate(lambda: torch.ops.quantized.linear(x, packed, 0.1, 64), 2.0 * size**3, repeats)
        return {"peak_int8_tops": rate / 1e12, "int8_engine": str(torch.backends.quantized.engine)}
    except Exception as err:  # a missing quantized engine is "unknown", not a probe failure
        return {"peak_int8_tops": None, "int8_reason": f"torch quantized linear failed here: {type(err).__name__}: {err}"}


def _copy_bandwidth(mib: int, repeats: int) -> float:
    src = np.ones(mib * 2**20 // 8, np.float64)
    dst = np.empty_like(src)
    return _best_rate(lambda: np.copyto(dst, src), 2.0 * src.nbytes, repeats) / 1e9


def run_probe(*, gemm_size: int = 2048, copy_mib: int = 256, repeats: int = 3) -> dict[str, Any]:
    """Measure the peaks now (no cache): the ``PROBE_KEYS`` plus how and under what load."""
    isa = set(cpu_features().get("isa") or [])
    start_load = load_average()
    t0 = time.perf_counter()
    result = {**_gemm_peaks(isa, gemm_size, repeats), "memory_bandwidth_gbs": _copy_bandwidth(copy_mib, repeats)}
    return {
        **{k: (round(result[k], 4) if isinstance(result.get(k), float) else result.get(k)) for k in PROBE_KEYS},
        "details": {k: v for k, v in result.items() if k not in PROBE_KEYS},
        "cpu": cpu_model(), "cpu_features": cpu_features().get("summary"), "cores_logical": os.cpu_count(),
        "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"), "probe_seconds": round(time.perf_counter() - t0, 2),
        "load_avg_start": start_load, "load_avg_end": load_average(), "probe_version": PROBE_VERSION,
        "method": "best of %d: torch.matmul fp32/bf16 %d², torch quantized linear u8×s8, numpy.copyto %d MiB (read+write)"
                  % (repeats, gemm_size, copy_mib),
    }


def host_peaks(refresh: bool = False) -> dict[str, Any]:
    """This machine's probe result: from the cache, else measured now and cached (atomically)."""
    path = cache_path()
    if path.is_file() and not refresh:
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # a damaged cache is re-measured
    result = run_probe()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)
    return {**result}


if __name__ == "__main__":  # python -m edgekd.core.hostprobe [--refresh]
    import sys

    print(json.dumps(host_peaks(refresh="--refresh" in sys.argv), indent=1))
