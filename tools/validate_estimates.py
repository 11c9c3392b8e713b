"""Check roofline estimates against measured latency on this machine (the ``host`` profile).

For every zoo model (random weights, 11 classes) at 360×480: export to ONNX once, then measure
batch-1 latency with ONNX Runtime FP32, OpenVINO with ``INFERENCE_PRECISION_HINT=f32`` and
OpenVINO at its default precision (bf16 on AMX CPUs), 2 threads, median of a timed loop after a
warm-up. Measurements go in ``--rounds`` rounds over all models and runtimes, so load drift on a
shared machine spreads over all of them; each cell's figure is the median over rounds.

This VM is shared: before and after each measurement a 2-thread FP32 GEMM probe records how
much of the machine the run got. The host profile's peaks were measured on the idle VM (GEMM
325 GFLOP/s), so a second, *contention-normalised* latency is reported: measured × probe / 325,
the latency the idle machine would have shown if contention slowed the run like it slowed the
GEMM (an assumption, stated as such). One efficiency factor per runtime is fitted on half the
models (median of bound/latency) and its error is reported on the other half, for both the raw
and the normalised figures; ``--write`` stores the normalised fit in
``edgekd/estimate/calibration.py`` (the factor that relates the idle-machine roofline to idle-machine
latency), with its provenance.

    python tools/validate_estimates.py --work /tmp/edgekd-validate [--rounds 3] [--write] [--markdown]
    python tools/validate_estimates.py --estimate-devices jetson-orin-nano,iphone-15-pro
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = (360, 480)
THREADS = 2
RUNTIMES = {  # name → (backend, precision estimated, session options)
    "onnxruntime-fp32": ("onnxruntime", "fp32", {}),
    "openvino-f32": ("openvino", "fp32", {"precision_hint": "f32"}),
    "openvino-default": ("openvino", "bf16", {}),
}
KINDS = ("raw", "normalized")


def export(name: str, work: Path) -> Path:
    import torch

    from edgekd.backends.onnx_export import export_onnx
    from edgekd.models import create_model

    path = work / f"{name}.onnx"
    if not path.is_file():
        torch.manual_seed(0)
        export_onnx(create_model(name, num_classes=11).eval(), SIZE, path)
    return path


def open_session(runtime: str, path: Path):
    from edgekd.backends.onnxruntime import OrtSession
    from edgekd.backends.openvino import OpenVinoSession

    backend, _, options = RUNTIMES[runtime]
    if backend == "onnxruntime":
        return OrtSession(path, threads=THREADS)
    return OpenVinoSession(path, threads=THREADS, **options)


def gemm_probe() -> float:
    """FP32 1024² GEMM GFLOP/s on THREADS threads right now (best of 5)."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter_ns()
        a @ b
        best = min(best, (time.perf_counter_ns() - t0) / 1e9)
    return 2 * 1024**3 / best / 1e9


def measure(runtime: str, path: Path, seconds: float) -> dict:
    from edgekd.core.host import load_average
    from edgekd.core.timing import LoopPolicy, WarmupPolicy, summarize, timed_loop, warm_up

    session = open_session(runtime, path)
    x = np.random.default_rng(0).standard_normal((1, 3, *SIZE)).astype(np.float32)
    load, probe_before = load_average(), gemm_probe()
    warm = warm_up(lambda: session.run(x), policy=WarmupPolicy(window=5, min_iters=3, max_iters=50, max_seconds=seconds))
    samples, stopped = timed_loop(lambda: session.run(x), policy=LoopPolicy(duration_s=seconds, min_iters=5, hard_limit_s=8 * seconds))
    probe = (probe_before + gemm_probe()) / 2
    stats = summarize(samples)
    ran = session.describe()
    return {"p50_ms": stats.p50, "min_ms": stats.min, "n": stats.n, "cv": stats.cv, "warmup_iters": warm.iterations,
            "stopped_by": stopped, "load_avg": load, "gemm_gflops": probe,
            "ran_as": {k: ran.get(k) for k in ("precision", "threads", "inference_precision_hint", "device_name")}}


def idle_gemm_gflops() -> float:
    from edgekd.profiles import load_profile

    return load_profile("host").hardware.peak_fp32_tflops * 1e3


def bound_ms(cost, runtime: str) -> float:
    """The host roofline at 100% efficiency for the precision this runtime computes in."""
    from edgekd.estimate.roofline import peak_and_bandwidth, roofline
    from edgekd.profiles import load_profile

    _, precision, _ = RUNTIMES[runtime]
    peak, bandwidth, _ = peak_and_bandwidth(load_profile("host"), precision)
    return roofline(cost, peak, bandwidth, precision)[1]


def collect(models: list[str], work: Path, seconds: float, rounds: int) -> dict:
    """Bounds for every model, then ``rounds`` rounds of measurements (cached in measurements.json)."""
    from edgekd.estimate.onnx_cost import graph_cost

    cache = work / "measurements.json"
    data = json.loads(cache.read_text()) if cache.is_file() else {}
    for name in models:
        cost = graph_cost(export(name, work))
        entry = data.setdefault(name, {"rounds": {}})
        entry["gflops"] = cost.flops / 1e9
        entry["bound_ms"] = {r: bound_ms(cost, r) for r in RUNTIMES}
    for round_index in range(rounds):
        for name in models:
            for runtime in RUNTIMES:
                done = data[name]["rounds"].setdefault(runtime, [])
                if len(done) > round_index:
                    continue
                m = measure(runtime, work / f"{name}.onnx", seconds)
                done.append(m)
                print(f"round {round_index + 1} {name:26s} {runtime:17s} p50 {m['p50_ms']:8.1f} ms  bound "
                      f"{data[name]['bound_ms'][runtime]:7.1f} ms  load {m['load_avg']}  gemm {m['gemm_gflops']:.0f} GFLOP/s",
                      file=sys.stderr, flush=True)
                cache.write_text(json.dumps(data, indent=1))
    return data


def latency(data: dict, model: str, runtime: str, kind: str) -> float:
    """Median over rounds of the measured p50, raw or contention-normalised."""
    runs = data[model]["rounds"][runtime]
    scale = (lambda r: r["gemm_gflops"] / idle_gemm_gflops()) if kind == "normalized" else (lambda r: 1.0)
    return statistics.median(r["p50_ms"] * scale(r) for r in runs)


def fit(data: dict, models: list[str], kind: str) -> dict:
    """Per runtime: factor = median(bound/latency) over the fit half; signed % errors for every model."""
    ordered = sorted(m for m in models if all(data[m]["rounds"].get(r) for r in RUNTIMES))
    fit_set, test_set = ordered[0::2], ordered[1::2]
    result = {}
    for runtime in RUNTIMES:
        measured = {m: latency(data, m, runtime, kind) for m in ordered}
        factor = statistics.median(data[m]["bound_ms"][runtime] / measured[m] for m in fit_set)
        errors = {m: 100 * (data[m]["bound_ms"][runtime] / factor / measured[m] - 1) for m in ordered}
        result[runtime] = {"factor": factor, "measured": measured, "errors": errors, "fit": fit_set, "test": test_set,
                           "test_median_abs_error_pct": statistics.median(abs(errors[m]) for m in test_set),
                           "test_max_abs_error_pct": max(abs(errors[m]) for m in test_set)}
    return result


def write_calibration(result: dict, data: dict) -> Path:
    from edgekd.core.host import cpu_model

    probes = [r["gemm_gflops"] for e in data.values() for runs in e["rounds"].values() for r in runs]
    entries = {}
    for runtime, r in result.items():
        backend, precision, _ = RUNTIMES[runtime]
        entries[f"host/{backend}/{precision}"] = {
            "efficiency": round(r["factor"], 4), "runtime": runtime, "fit_models": r["fit"], "test_models": r["test"],
            "test_median_abs_error_pct": round(r["test_median_abs_error_pct"], 1),
            "test_max_abs_error_pct": round(r["test_max_abs_error_pct"], 1)}
    doc = {"date": date.today().isoformat(), "cpu": cpu_model(), "threads": THREADS, "input_size": list(SIZE),
           "latency": f"median over rounds of the p50, contention-normalised by a GEMM probe (median probe "
                      f"{statistics.median(probes):.0f} GFLOP/s vs {idle_gemm_gflops():.0f} idle)",
           "command": "python tools/validate_estimates.py --write", "entries": entries}
    path = ROOT / "edgekd" / "estimate" / "calibration.py"
    path.write_text('"""Efficiency factors fitted against measured latency (generated; do not edit by hand).\n\n'
                    'Written by ``python tools/validate_estimates.py --write``; see docs/doctor.md for the run.\n"""\n\n'
                    f"CALIBRATION: dict = {json.dumps(doc, indent=4)}\n")
    return path


def markdown(results: dict, data: dict) -> str:
    lines = []
    for kind in KINDS:
        res = results[kind]
        lines += [f"\n**{kind}** latency (ms, median over rounds): measured / estimated (error; `fit` = model used to fit)\n",
                  "| model | GFLOPs | " + " | ".join(RUNTIMES) + " | GEMM probe GFLOP/s | load avg 1 min |",
                  "|---|---|" + "---|" * (len(RUNTIMES) + 2)]
        for m in sorted(res[next(iter(RUNTIMES))]["errors"]):
            cells = [f"{res[r]['measured'][m]:.1f} / {data[m]['bound_ms'][r] / res[r]['factor']:.1f} "
                     f"({res[r]['errors'][m]:+.0f}%{'' if m in res[r]['test'] else ' fit'})" for r in RUNTIMES]
            runs = [x for r in RUNTIMES for x in data[m]["rounds"][r]]
            probe = f"{min(x['gemm_gflops'] for x in runs):.0f}–{max(x['gemm_gflops'] for x in runs):.0f}"
            load = f"{min(x['load_avg'][0] for x in runs):.1f}–{max(x['load_avg'][0] for x in runs):.1f}"
            lines.append(f"| {m} | {data[m]['gflops']:.2f} | " + " | ".join(cells) + f" | {probe} | {load} |")
        lines.append("")
        for r in RUNTIMES:
            lines.append(f"- {kind} {r}: efficiency {res[r]['factor']:.3f}; held-out median |error| "
                         f"{res[r]['test_median_abs_error_pct']:.0f}%, max {res[r]['test_max_abs_error_pct']:.0f}%")
    return "\n".join(lines)


def device_table(models: list[str], work: Path, devices: list[str], overrides: dict) -> str:
    """Estimates (and their 100%-efficiency bounds) for devices not at hand, with each basis once."""
    from edgekd.estimate.onnx_cost import graph_cost
    from edgekd.estimate.roofline import PEAK_KEYS, estimate_cost
    from edgekd.profiles import load_profile

    lines, bases = [], {}
    for device in devices:
        profile = load_profile(device)
        precisions = [p for p in profile.precisions if getattr(profile.hardware, PEAK_KEYS[p]) is not None]
        lines += [f"\n**{device}** (estimate, not measured): ms with the efficiency factor / roofline at efficiency 1\n",
                  "| model | " + " | ".join(precisions) + " |", "|---|" + "---|" * len(precisions)]
        for name in models:
            cost = graph_cost(export(name, work))
            cells = []
            for p in precisions:
                e = estimate_cost(cost, profile, p, **overrides)
                bases[(device, p)] = e
                cells.append(f"{e.latency_ms:.1f} / {e.roofline_ms:.2f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    for (device, p), e in bases.items():
        lines.append(f"- {device} {p}: peak {e.basis['peak']}; bandwidth {e.basis['bandwidth']}; efficiency "
                     f"{e.efficiency:.3f} — {e.efficiency_source}" + ("; " + "; ".join(e.notes) if e.notes else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    from edgekd.models import list_models

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="/tmp/edgekd-validate", help="ONNX files and measurements.json (cache)")
    p.add_argument("--models", default=None, help="comma-separated zoo names (default: every zoo model)")
    p.add_argument("--seconds", type=float, default=3.0, help="timed-loop duration per cell and round (default 3 s)")
    p.add_argument("--rounds", type=int, default=3, help="measurement rounds over all cells (default 3; 0 re-fits the cache)")
    p.add_argument("--write", action="store_true", help="write edgekd/estimate/calibration.py (normalised fit)")
    p.add_argument("--markdown", action="store_true", help="print the per-model tables for docs/doctor.md")
    p.add_argument("--estimate-devices", default=None, help="comma-separated profiles to print estimates for (no measuring)")
    p.add_argument("--bandwidth-gbs", type=float, default=None, help="with --estimate-devices: bandwidth override, stated in the basis")
    args = p.parse_args(argv)
    torch.set_num_threads(THREADS)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",") if args.models else [e.name for e in list_models()]
    if args.estimate_devices:
        overrides = {"bandwidth_gbs": args.bandwidth_gbs} if args.bandwidth_gbs else {}
        print(device_table(models, work, args.estimate_devices.split(","), overrides))
        return 0
    data = collect(models, work, args.seconds, args.rounds)
    results = {kind: fit(data, models, kind) for kind in KINDS}
    print(markdown(results, data) if args.markdown else json.dumps(
        {k: {r: {x: v for x, v in res.items() if x not in ("measured",)} for r, res in rs.items()} for k, rs in results.items()},
        indent=1))
    if args.write:
        print(f"wrote {write_calibration(results['normalized'], data)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
