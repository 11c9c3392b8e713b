#!/usr/bin/env python
"""Check edgekd's benchmark harness against the runtimes' own tools on the same artifacts.

One command (exports the artifacts when they are not there yet, then measures)::

    .venv/bin/python tools/bench_crosscheck.py --checkpoint ../shared/models/espnet_p2q8_camvid.pth \\
        --arch espnet_p2q8 --input-size 360x480

Matched settings, 2 threads by default:

- OpenVINO: ``benchmark_app -m model.xml -d CPU -hint none -nthreads T -nstreams 1 -infer_precision f32``
  (ships with the openvino wheel; one stream, one infer request, inference-only timing) against a
  harness cell with ``threads=T, precision_hint=f32`` (the harness keeps its LATENCY hint, which
  with an explicit thread count gives one stream too; the row's ``describe()`` is checked for it).
- ONNX Runtime: ``onnxruntime_perf_test`` when it is on PATH (it is not in the pip wheel), else a
  reference minimal loop in a fresh process: the backend's session options (T intra-op threads,
  one inter-op thread, sequential, all graph optimisations), IOBinding with the input bound once
  and a preallocated output, ``run_with_iobinding`` timed per call.

The harness side is a real ``edgekd bench`` cell in a fresh worker (warm-up, timed loop over
``session.bind(x)``). Harness and reference alternate, A B A B ..., so a load change on this
shared machine hits both alike, and each round's order flips (A B, B A, ...). The table gives the
median of the per-round p50s, the median of the per-round (paired) ratios with its 95% order-statistic
interval and a verdict (within / outside the target 0.97-1.03, or not resolvable when the interval
straddles it), every round's figures and the 1-minute load average at each harness round.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgekd.core.host import load_average  # noqa: E402
from edgekd.bench.process import LocalTarget  # noqa: E402
from edgekd.bench.cellspec import CellSpec  # noqa: E402
from edgekd.core.timing import LoopPolicy, WarmupPolicy, min_samples_for, quantile_ci  # noqa: E402

BACKENDS = ("openvino", "onnxruntime")
TARGET = (0.97, 1.03)

ORT_LOOP = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
path, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
so.add_session_config_entry("session.set_denormal_as_zero", "0")
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
inp, outp = s.get_inputs()[0], s.get_outputs()[0]
shape = [d if isinstance(d, int) else 1 for d in inp.shape]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
y = np.empty_like(s.run([outp.name], {inp.name: x})[0])
binding = s.io_binding()
binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(x))
binding.bind_ortvalue_output(outp.name, ort.OrtValue.ortvalue_from_numpy(y))
run = s.run_with_iobinding
end = time.perf_counter() + min(3.0, seconds / 2)
while time.perf_counter() < end:
    run(binding)
times = []
clock = time.perf_counter_ns
end = clock() + int(seconds * 1e9)
while clock() < end or len(times) < 20:
    t0 = clock(); run(binding); times.append(clock() - t0)
print(json.dumps({"median_ms": float(np.median(times)) / 1e6, "n": len(times)}))
"""


def export_artifacts(args: argparse.Namespace) -> list[Path]:
    """The FP32 ONNX Runtime and OpenVINO artifacts of ``--checkpoint``, exported once into ``--work``."""
    from edgekd.export import export_checkpoint

    root = args.work / Path(args.checkpoint).stem
    wanted = [root / f"{b}-fp32" for b in args.backends]
    missing = [p for p in wanted if not (p / "manifest.json").is_file()]
    if missing:
        print(f"exporting {', '.join(p.name for p in missing)} into {root}", flush=True)
        export_checkpoint(args.checkpoint, backends=[p.name.split("-")[0] for p in missing], precisions="fp32",
                          out_dir=args.work, arch=args.arch, input_size=args.input_size, parity_images=0,
                          log=lambda m: print(f"  {m}", flush=True))
    return wanted


def harness(artifact: Path, backend: str, threads: int, seconds: float) -> dict[str, Any]:
    """One real bench cell (fresh worker) with the matched settings; the row as the bench writes it."""
    options: dict[str, Any] = {"threads": threads}
    if backend == "openvino":
        options.update(precision_hint="f32", performance_hint="LATENCY")
    spec = CellSpec(artifact_dir=str(artifact), runtime_options=options,
                    timing=LoopPolicy(duration_s=seconds, min_iters=20, tail_min_iters=0), warmup=WarmupPolicy(max_seconds=3.0))
    timeout = 600 + 10 * seconds  # generous: a niced worker on a loaded 2-core machine gets little CPU
    outcome = LocalTarget().run_worker(spec, timeout_s=timeout)
    row = outcome.result or {}
    if row.get("status") != "ok":
        raise SystemExit(f"harness failed on {artifact}: {outcome.failure(timeout) or row.get('error')}")
    return row


def benchmark_app_cmd(xml: Path, threads: int, seconds: float) -> list[str]:
    tool = shutil.which("benchmark_app") or str(Path(sys.executable).with_name("benchmark_app"))
    return [tool, "-m", str(xml), "-d", "CPU", "-hint", "none", "-nthreads", str(threads), "-nstreams", "1",
            "-infer_precision", "f32", "-t", str(max(1, round(seconds)))]


def benchmark_app(xml: Path, threads: int, seconds: float) -> float:
    out = subprocess.run(benchmark_app_cmd(xml, threads, seconds), capture_output=True, text=True, check=True).stdout
    match = re.search(r"Latency:\s*\n.*?Median:\s+([\d.]+) ms", out, re.S)
    if not match:
        raise SystemExit(f"no median latency in benchmark_app output:\n{out[-2000:]}")
    return float(match.group(1))


def ort_reference(onnx: Path, threads: int, seconds: float) -> tuple[float, str]:
    """(median ms, what measured it): onnxruntime_perf_test when installed, else the IOBinding loop."""
    perf_test = shutil.which("onnxruntime_perf_test")
    if perf_test:
        cmd = [perf_test, "-e", "cpu", "-x", str(threads), "-y", "1", "-t", str(max(1, round(seconds))), "-I", str(onnx)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        match = re.search(r"P50 Latency:\s*([\d.eE+-]+)\s*s", out)
        if match:
            return float(match.group(1)) * 1e3, "onnxruntime_perf_test"
    out = subprocess.run([sys.executable, "-c", ORT_LOOP, str(onnx), str(threads), str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_ms"], "minimal loop: IOBinding, preallocated output"


def check(artifact: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    """Interleaved rounds (harness, reference, harness, reference, ...) on one artifact."""
    backend = json.loads((artifact / "manifest.json").read_text())["backend"]
    if backend not in BACKENDS:
        print(f"skipping {artifact}: no reference tool for backend {backend!r}", file=sys.stderr)
        return None
    harness_ms, ref_ms, loads, rows, tool = [], [], [], [], ""
    for i in range(args.rounds):
        # A B, then B A: a load that drifts within a round hits each side first as often as second.
        order = ("harness", "reference") if i % 2 == 0 else ("reference", "harness")
        for side in order:
            if side == "harness":
                row = harness(artifact, backend, args.threads, args.seconds)
                rows.append(row)
                harness_ms.append(row["latency_ms"]["p50"])
                loads.append(row["host"]["load_avg_start"][0])
            elif backend == "openvino":
                ref_ms.append(benchmark_app(artifact / "model.xml", args.threads, args.seconds))
                tool = "benchmark_app " + " ".join(benchmark_app_cmd(Path("model.xml"), args.threads, args.seconds)[3:])
            else:
                ms, tool = ort_reference(artifact / "model.onnx", args.threads, args.seconds)
                ref_ms.append(ms)
        print(f"  {artifact.name} round {i + 1} ({' then '.join(order)}): harness {harness_ms[-1]:.2f} ms, "
              f"reference {ref_ms[-1]:.2f} ms, ratio {harness_ms[-1] / ref_ms[-1]:.3f}, load {loads[-1]:.2f}", flush=True)
    last = rows[-1]
    h, r = statistics.median(harness_ms), statistics.median(ref_ms)
    paired = paired_ratio(harness_ms, ref_ms)
    return {"artifact": f"{artifact.parent.name}/{artifact.name}", "backend": backend, "tool": tool,
            "harness_p50_ms": h, "reference_p50_ms": r, "ratio": h / r, **paired,
            "rounds_harness": harness_ms, "rounds_reference": ref_ms,
            "load_1min": loads, "load_end": load_average(), "threads": args.threads, "seconds": args.seconds,
            "precision_used": last["backend"]["precision_used"], "describe": last["backend"]["describe"],
            "last_harness_latency_ms": last["latency_ms"], "last_harness_noise": last.get("noise"),
            "timed_region": last.get("timed_region")}


def paired_ratio(harness_ms: list[float], ref_ms: list[float]) -> dict[str, Any]:
    """The median of the per-round ratios (each round's two sides ran back to back), its 95% CI and a verdict.

    The ratio of the two medians mixes rounds minutes apart; on a VM whose speed swings 1.6x between
    rounds that difference is the host, not the harness. Pairing adjacent runs cancels it, and the
    order-statistic interval says whether the target can be decided at all: "within" only when the
    whole interval is inside the target, "outside" when none of it is, else "not resolvable".
    """
    ratios = np.sort(np.asarray(harness_ms) / np.asarray(ref_ms))
    lo, hi = quantile_ci(ratios, 0.5)
    if lo is None or hi is None:
        verdict = f"not resolvable (need >= {min_samples_for(0.5)} rounds for an interval)"
    elif TARGET[0] <= lo and hi <= TARGET[1]:
        verdict = "within target"
    elif hi < TARGET[0] or lo > TARGET[1]:
        verdict = "outside target"
    else:
        verdict = "not resolvable at this noise (interval straddles the target)"
    return {"paired_ratio": float(np.median(ratios)), "paired_ratio_ci": [lo, hi], "verdict": verdict,
            "rounds_ratio": [float(x) for x in np.asarray(harness_ms) / np.asarray(ref_ms)]}


def print_table(rows: list[dict[str, Any]]) -> None:
    """One table per backend: harness p50, reference p50, ratio, the rounds and the load."""
    for backend in BACKENDS:
        part = [r for r in rows if r["backend"] == backend]
        if not part:
            continue
        print(f"\n### {backend}: reference = {part[0]['tool']}\n")
        print("| artifact | ran as | harness p50 ms | reference p50 ms | paired ratio [95% CI] | verdict (target 0.97–1.03) "
              "| rounds harness | rounds reference | load (1 min) |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in part:
            lo, hi = r["paired_ratio_ci"]
            print(f"| {r['artifact']} | {r['precision_used']}, {r['threads']} threads | {r['harness_p50_ms']:.2f} | "
                  f"{r['reference_p50_ms']:.2f} | {r['paired_ratio']:.3f} [{_num(lo, 3)}, {_num(hi, 3)}] | {r['verdict']} | "
                  f"{', '.join(f'{v:.1f}' for v in r['rounds_harness'])} | "
                  f"{', '.join(f'{v:.1f}' for v in r['rounds_reference'])} | {', '.join(f'{v:.2f}' for v in r['load_1min'])} |")
        for r in part:
            lat, noise = r["last_harness_latency_ms"], r["last_harness_noise"] or {}
            ci = lat.get("p50_ci") or [None, None]
            print(f"\nlast harness round of {r['artifact']}: p50 {lat['p50']:.2f} ms (95% CI {_num(ci[0])}–{_num(ci[1])}), "
                  f"n={lat['n']}, CV {100 * lat['cv']:.1f}%; warnings: {'; '.join(noise.get('warnings') or []) or 'none'}")


def _num(v: float | None, digits: int = 2) -> str:
    return "open" if v is None else f"{v:.{digits}f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="*", type=Path, help="artifact folders (default: export --checkpoint into --work)")
    p.add_argument("--checkpoint", type=Path, help="checkpoint to export FP32 ONNX Runtime + OpenVINO artifacts from")
    p.add_argument("--arch", default=None, help="architecture of a third-party state dict (e.g. espnet_p2q8)")
    p.add_argument("--input-size", default=None, help="HxW for the export (default: the checkpoint's)")
    p.add_argument("--work", type=Path, default=REPO / "artifacts" / "crosscheck", help="where exported artifacts go")
    p.add_argument("--backends", default="openvino,onnxruntime", help="with --checkpoint: which backends to export")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0, help="timed seconds per harness and per reference run")
    p.add_argument("--rounds", type=int, default=8, help="rounds per artifact (A B, B A, ...); 6 or more give an interval")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args()
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not args.artifacts and not args.checkpoint:
        p.error("pass artifact folders or --checkpoint")
    artifacts = [a.resolve() for a in args.artifacts] + (export_artifacts(args) if args.checkpoint else [])
    print(f"load average at start: {load_average()}; {os.cpu_count()} logical CPUs", flush=True)
    rows = [r for r in (check(a, args) for a in artifacts) if r]
    print_table(rows)
    print(f"\nload average at end: {load_average()}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
