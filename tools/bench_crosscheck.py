#!/usr/bin/env python
"""Check edgekd's benchmark harness against the runtimes' own tools on the same artifacts.

- OpenVINO: ``benchmark_app`` (ships with the openvino wheel) on the artifact's ``model.xml`` with
  ``-hint none -nthreads T -nstreams 1 -api sync -infer_precision P`` (FACTS.md: the latency hint
  refuses ``-nthreads``), P being the inference precision edgekd's session really used (read back
  from the harness row), or f32 on both sides with ``--ov-precision f32``.
- ONNX Runtime: a plain ``session.run`` loop in a fresh process with the same threads and session
  options as edgekd's backend.

The harness side is a real ``edgekd bench`` cell (fresh worker, warm-up, timed loop). Rounds are
interleaved (tool, harness, tool, harness, ...) because this shared VM drifts by ±30 % over
minutes; the table gives the median of the per-round medians and the load average.

Usage: .venv/bin/python tools/bench_crosscheck.py ARTIFACT_DIR... [--threads 2] [--seconds 10] [--rounds 3]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgekd.bench.process import LocalTarget  # noqa: E402
from edgekd.profiles import load_profile, runtime_options_for  # noqa: E402

ORT_LOOP = r"""
import json, sys, time
import numpy as np, onnxruntime as ort
path, threads, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
inp = s.get_inputs()[0]
x = np.random.default_rng(0).standard_normal([d if isinstance(d, int) else 1 for d in inp.shape]).astype(np.float32)
feed = {inp.name: x}
end = time.perf_counter() + min(2.0, seconds / 2)
while time.perf_counter() < end:
    s.run(None, feed)
times, end = [], time.perf_counter() + seconds
while time.perf_counter() < end:
    t0 = time.perf_counter_ns(); s.run(None, feed); times.append(time.perf_counter_ns() - t0)
print(json.dumps({"median_ms": float(np.median(times)) / 1e6, "n": len(times)}))
"""


def harness(artifact: Path, backend: str, threads: int, seconds: float, extra: dict) -> dict:
    profile = load_profile("host").with_threads(threads)
    spec = {"mode": "cell", "artifact_dir": str(artifact), "runtime_options": {**runtime_options_for(profile, backend), **extra},
            "timing": {"duration_s": seconds, "min_iters": 50}, "warmup": {"max_seconds": 5.0},
            "throughput_s": 0, "sensors": {}}
    outcome = LocalTarget().run_worker(spec, timeout_s=120 + 4 * seconds)
    row = outcome.result or {}
    if row.get("status") != "ok":
        raise SystemExit(f"harness failed on {artifact}: {outcome.failure(120) or row.get('error')}")
    return row


def benchmark_app(xml: Path, threads: int, seconds: float, precision: str) -> float:
    tool = Path(sys.executable).with_name("benchmark_app")
    cmd = [str(tool), "-m", str(xml), "-d", "CPU", "-hint", "none", "-nthreads", str(threads), "-nstreams", "1",
           "-api", "sync", "-infer_precision", precision, "-t", str(int(seconds))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Latency:\s*\n.*Median:\s+([\d.]+) ms", out)
    if not match:
        raise SystemExit(f"no median in benchmark_app output:\n{out[-2000:]}")
    return float(match.group(1))


def ort_loop(onnx: Path, threads: int, seconds: float) -> float:
    out = subprocess.run([sys.executable, "-c", ORT_LOOP, str(onnx), str(threads), str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["median_ms"]


def check(artifact: Path, args: argparse.Namespace) -> list[dict]:
    manifest = json.loads((artifact / "manifest.json").read_text())
    backend = manifest["backend"]
    settings = [("", {})]
    if backend == "openvino":
        settings = [(p, {} if p == "default" else {"precision_hint": "f32"})
                    for p in (["default", "f32"] if args.ov_precision == "both" else [args.ov_precision])]
    elif backend != "onnxruntime":
        return []
    rows = []
    for label, extra in settings:
        tool_ms, harness_ms, used, loads = [], [], None, []
        for _ in range(args.rounds):
            row = harness(artifact, backend, args.threads, args.seconds, extra)
            harness_ms.append(row["latency_ms"]["p50"])
            loads.append(row["host"]["load_avg_start"][0])
            used = row["backend"]["describe"].get("inference_precision_hint") or row["backend"]["precision_used"]
            if backend == "openvino":
                tool_ms.append(benchmark_app(artifact / "model.xml", args.threads, args.seconds, used))
            else:
                tool_ms.append(ort_loop(artifact / "model.onnx", args.threads, args.seconds))
        tool = "benchmark_app" if backend == "openvino" else "plain session.run loop"
        rows.append({"artifact": f"{artifact.parent.name}/{artifact.name}", "backend": backend, "precision": used,
                     "tool": tool, "tool_ms": statistics.median(tool_ms), "harness_ms": statistics.median(harness_ms),
                     "rounds_tool": tool_ms, "rounds_harness": harness_ms, "load_1min": loads, "threads": args.threads})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("artifacts", nargs="+", type=Path)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ov-precision", choices=("default", "f32", "both"), default="both")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = p.parse_args()
    rows = [r for a in args.artifacts for r in check(a.resolve(), args)]
    print("| artifact | precision used | tool | tool median ms | edgekd median ms | edgekd / tool | load (1 min) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['artifact']} | {r['precision']} | {r['tool']} | {r['tool_ms']:.2f} | {r['harness_ms']:.2f} | "
              f"{r['harness_ms'] / r['tool_ms']:.2f} | {', '.join(f'{x:.1f}' for x in r['load_1min'])} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
