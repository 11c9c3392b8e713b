"""``edgekd doctor --fix``: write a copy of a checkpoint with subnormal weights flushed to zero, and
show what it changes — parity (argmax agreement, max |Δlogit|) and speed on this machine.

Speed is measured with PyTorch eager and ONNX Runtime, before and after, batch 1 at the
checkpoint's input size, as medians of interleaved before/after rounds after a warm-up, with the process's
denormal flushing OFF (``torch.set_flush_denormal(False)``; ONNX Runtime's
``session.set_denormal_as_zero`` off) — the conditions a user's app runs in unless it sets FTZ/DAZ
itself, and the ones under which subnormals cost time. The machine load is recorded beside it.
"""
from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekd.doctor.weights import flush_subnormals
from edgekd.errors import EdgekdError

PARITY_IMAGES = 4
Log = Callable[[str], None]


def parity_inputs(meta: Any, size: tuple[int, int], data: str | Path | None, count: int = PARITY_IMAGES,
                  work: Path | None = None) -> tuple[np.ndarray, str]:
    """Normalised N×3×H×W inputs and where they came from: real images, synthetic scenes, or seeded noise."""
    from edgekd.export.inputs import load_sample

    norm = {"mean": list(meta.mean), "std": list(meta.std), "channel_order": meta.channel_order}
    if data is not None:
        sample = load_sample(data, "val", count, size)
        return sample.normalized(norm), f"{sample.description['num_images']} real images of {data} [val]"
    try:
        from edgekd.data import generate_synthetic_dataset
    except ImportError:
        generate_synthetic_dataset = None
    if generate_synthetic_dataset is not None and work is not None:
        root = generate_synthetic_dataset(work / "synthetic", num_train=0, num_val=count, size=size, seed=0)
        sample = load_sample(root, "val", count, size)
        return sample.normalized(norm), f"{count} synthetic AR scenes (edgekd.data.generate_synthetic_dataset, seed 0)"
    x = np.random.default_rng(0).standard_normal((count, 3, *size)).astype(np.float32)
    return x, f"{count} standard-normal inputs (numpy seed 0)"


def parity(before: Any, after: Any, inputs: np.ndarray) -> dict[str, Any]:
    """Argmax agreement and max |Δlogit| between two models on the same inputs (denormals not flushed)."""
    import torch

    diffs, agree, pixels = [], 0, 0
    with torch.inference_mode():
        for i in range(len(inputs)):
            x = torch.from_numpy(inputs[i:i + 1])
            a, b = before(x), after(x)
            diffs.append(float((a - b).abs().max()))
            agree += int((a.argmax(1) == b.argmax(1)).sum())
            pixels += a.shape[0] * a.shape[2] * a.shape[3]
    return {"images": len(inputs), "max_abs_logit_diff": max(diffs), "argmax_agreement": agree / pixels}


def interleaved_medians(before: Callable[[], Any], after: Callable[[], Any], iters: int,
                        max_seconds: float) -> dict[str, Any]:
    """Warm both up (edgekd.core.timing), then time them in alternating rounds and take each median.

    Alternating rounds share the machine's load drift between the two (docs/doctor.md: medians on this
    shared VM move by up to ±30% between rounds), so the speed-up compares like with like.
    """
    from edgekd.core.host import load_average
    from edgekd.core.timing import WarmupPolicy, summarize, warm_up

    load = load_average()
    policy = WarmupPolicy(window=3, min_iters=1, max_iters=20, max_seconds=max_seconds / 4)
    warm = {"before": warm_up(before, policy=policy).iterations, "after": warm_up(after, policy=policy).iterations}
    samples: dict[str, list[int]] = {"before": [], "after": []}
    deadline = time.perf_counter_ns() + int(max_seconds * 1e9)
    for _ in range(iters):
        for key, step in (("before", before), ("after", after)):
            t0 = time.perf_counter_ns()
            step()
            samples[key].append(time.perf_counter_ns() - t0)
        if time.perf_counter_ns() > deadline:
            break
    out: dict[str, Any] = {}
    for key, values in samples.items():
        stats = summarize(values)
        out[key] = {"median_ms": stats.p50, "min_ms": stats.min, "iterations": stats.n, "warmup_iterations": warm[key]}
    out["load_avg"] = {"start": load, "end": load_average()}
    out["speedup"] = out["before"]["median_ms"] / out["after"]["median_ms"]
    return out


def speed_torch(before: Any, after: Any, x: np.ndarray, threads: int, iters: int, max_seconds: float) -> dict[str, Any]:
    import torch

    from edgekd.core.subnormal import denormals_flushed

    previous_threads = torch.get_num_threads()
    previous_flush = denormals_flushed()
    torch.set_flush_denormal(False)
    torch.set_num_threads(threads)
    t = torch.from_numpy(x)
    try:
        with torch.inference_mode():
            result = interleaved_medians(lambda: before(t), lambda: after(t), iters, max_seconds)
    finally:
        torch.set_num_threads(previous_threads)
        torch.set_flush_denormal(previous_flush)
    return {"runtime": f"torch {torch.__version__} eager", **result}


def speed_onnxruntime(onnx_before: Path, onnx_after: Path, x: np.ndarray, threads: int, iters: int,
                      max_seconds: float) -> dict[str, Any]:
    import onnxruntime as ort

    from edgekd.backends.onnxruntime import OrtSession

    before = OrtSession(onnx_before, threads=threads, denormal_as_zero=False)
    after = OrtSession(onnx_after, threads=threads, denormal_as_zero=False)
    result = interleaved_medians(lambda: before.run(x), lambda: after.run(x), iters, max_seconds)
    return {"runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider, set_denormal_as_zero=0", **result}


def check_fix_output(source: str | Path, out: str | Path, force: bool = False) -> None:
    """Refuse a --fix output that is not a new .safetensors path (checked before any work is done)."""
    source, out = Path(source), Path(out)
    if out.suffix != ".safetensors":
        raise EdgekdError(f"--fix output {str(out)!r} must end in .safetensors (an edgekd checkpoint)")
    if out.resolve() == source.resolve():
        raise EdgekdError(f"--fix output {out} is the input checkpoint; write the fixed copy to a new path")
    if out.exists() and not force:
        raise EdgekdError(f"--fix output {out} exists; choose a new path or pass --force to replace it")


def fix_checkpoint(path: str | Path, out: str | Path, *, arch: str | None = None, num_classes: int | None = None,
                   data: str | Path | None = None, threads: int = 2, iters: int = 5, max_seconds: float = 120.0,
                   onnx_before: Path | None = None, force: bool = False, log: Log | None = None) -> dict[str, Any]:
    """Flush subnormals into a new edgekd checkpoint at ``out``; returns counts, parity and speed figures."""
    from edgekd.backends.onnx_export import export_onnx
    from edgekd.checkpoint import load_checkpoint, save_checkpoint, sha256_file

    log = log or (lambda message: None)
    path, out = Path(path), Path(out)
    check_fix_output(path, out, force)
    model, meta = load_checkpoint(path, arch=arch, num_classes=num_classes)
    new_state, flushed = flush_subnormals(model.state_dict())
    fixed = copy.deepcopy(model)
    fixed.load_state_dict(new_state)
    meta.trained_with = {**meta.trained_with, "weights_fixed": {
        "by": "edgekd doctor --fix", "subnormals_flushed": flushed, "source": path.name, "source_sha256": sha256_file(path)}}
    save_checkpoint(out, fixed, meta)
    log(f"wrote {out} ({flushed:,} subnormal values flushed)")
    size = (int(meta.input_size[0]), int(meta.input_size[1]))
    with tempfile.TemporaryDirectory(prefix="edgekd-doctor-fix-") as tmp:
        work = Path(tmp)
        inputs, source = parity_inputs(meta, size, data, work=work)
        log(f"parity on {source}")
        result = {"out": str(out), "subnormals_flushed": flushed, "input_size": list(size), "threads": threads,
                  "parity": {**parity(model, fixed, inputs), "inputs": source}}
        log("timing PyTorch eager before/after (denormal flushing off)")
        result["speed"] = {"torch": speed_torch(model, fixed, inputs[:1], threads, iters, max_seconds)}
        if onnx_before is None:
            onnx_before = work / "before.onnx"
            export_onnx(model, size, onnx_before)
        onnx_after = work / "after.onnx"
        export_onnx(fixed, size, onnx_after)
        log("timing ONNX Runtime before/after")
        result["speed"]["onnxruntime"] = speed_onnxruntime(onnx_before, onnx_after, inputs[:1], threads, iters, max_seconds)
    return result
