#!/usr/bin/env python
"""Print the model-zoo table of docs/models.md: role, params, MACs and PyTorch CPU latency.

Every registered model is built with random weights (no pretrained weights exist here) and
timed in eager PyTorch FP32 on one 1×3×H×W input: ``--warmup`` untimed calls, then ``--iters``
calls each timed with ``time.perf_counter_ns`` under ``torch.inference_mode()``; the table gives
the median, the minimum and the 90th percentile (under contention the minimum is the
figure closest to an idle machine). The machine, thread count and load average are printed with
the table because eager latency on a shared CPU moves a lot with other processes' load.

    .venv/bin/python tools/model_table.py --input-size 360x480 --threads 2 --warmup 5 --iters 20
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgekd.models import create_model, list_models  # noqa: E402
from edgekd.models.complexity import count_macs, count_params  # noqa: E402
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.input_sizes import parse_hw  # noqa: E402
from edgekd.cli._common import add_renamed_argument  # noqa: E402


def parse_size(text: str) -> tuple[int, int]:
    """``HxW`` → (H, W)."""
    try:
        return parse_hw(text)
    except EdgekdError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def time_forward(model: torch.nn.Module, size: tuple[int, int], warmup: int, iters: int) -> list[float]:
    """Milliseconds of each of ``iters`` timed forward calls after ``warmup`` untimed ones."""
    x = torch.randn(1, 3, *size)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        for _ in range(iters):
            start = time.perf_counter_ns()
            model(x)
            times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line(threads: int) -> str:
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"torch {torch.__version__}, torch.set_num_threads({threads}), load average (1/5/15 min) {load}")


def table_row(name: str, role: str, size: tuple[int, int], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    model = create_model(name, num_classes=args.num_classes).eval()
    params, macs = count_params(model), count_macs(model, size)
    times = time_forward(model, size, args.warmup, args.iters)
    p90 = statistics.quantiles(times, n=10)[-1]
    return (f"| `{name}` | {role} | {model.output_stride} | {params / 1e6:.2f} | {macs / 1e9:.2f} "
            f"| {statistics.median(times):.1f} | {min(times):.1f} | {p90:.1f} | {load:.1f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_renamed_argument(parser, "--input-size", "--size", type=parse_size, default=(360, 480), help="input HxW (default 360x480)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--num-classes", type=int, default=11)
    parser.add_argument("--models", default="", help="comma-separated names (default: every registered model)")
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.iters < 2:
        parser.error("--warmup must be ≥ 0 and --iters ≥ 2")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    entries = list_models()
    wanted = [n for n in args.models.split(",") if n]
    unknown = set(wanted) - {e.name for e in entries}
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; known: {', '.join(e.name for e in entries)}")
    h, w = args.input_size
    print(f"Machine (before): {machine_line(args.threads)}")
    print(f"Input 1×3×{h}×{w}, FP32, eager, warm-up {args.warmup}, timed {args.iters}, random weights\n")
    print("| model | role | OS | params (M) | GMACs | median ms | min ms | p90 ms | load avg (1 min) at start |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for entry in entries:
        if not wanted or entry.name in wanted:
            print(table_row(entry.name, entry.role, (h, w), args), flush=True)
    print(f"\nMachine (after): {machine_line(args.threads)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
