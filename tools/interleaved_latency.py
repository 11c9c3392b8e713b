#!/usr/bin/env python
"""Latency ratios between artifacts that one bench run cannot rank: interleaved rounds.

On a shared VM the machine's speed changes within seconds (measured here: a ~1.8x slower state
that comes and goes), so two bench cells timed a minute apart compare machine states, not models.
This times every artifact in each round, A B C … then … C B A, ``--seconds`` each, in one process
(every session opened and warmed up first), and reports per-round medians, each artifact's median of
them, and its median ratio to the first artifact with the range over rounds.

    .venv/bin/python tools/interleaved_latency.py OUT/openvino/cgnet_m3n21_camvid_trainval/openvino-fp32-240x320 \\
        OUT/openvino/cgnet_m3n21_camvid_trainval/openvino-int8-270x360 --rounds 8 --precision-hint f32
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgekd.export import load_artifact, read_manifest  # noqa: E402


def open_session(folder: Path, threads: int, precision_hint: str | None):
    """(bound call, label) for one artifact, warmed up on a fixed input of its own shape."""
    manifest = read_manifest(folder)
    options = {"threads": threads}
    if precision_hint and manifest["backend"] == "openvino":
        options["precision_hint"] = precision_hint
    session = load_artifact(folder, **options)
    shape = [1 if d == "N" else int(d) for d in manifest["input_shape"]]
    call = session.bind(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    for _ in range(5):
        call()
    return call, f"{folder.parent.name}/{folder.name}"


def round_median(call, seconds: float) -> float:
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def interleave(calls: list, rounds: int, seconds: float) -> list[list[float]]:
    """Per-artifact lists of per-round medians (ms); the order flips every round."""
    medians: list[list[float]] = [[] for _ in calls]
    for r in range(rounds):
        order = range(len(calls)) if r % 2 == 0 else reversed(range(len(calls)))
        for i in order:
            medians[i].append(round_median(calls[i], seconds))
    return medians


def report(labels: list[str], medians: list[list[float]]) -> list[str]:
    lines = []
    for label, series in zip(labels, medians):
        ratios = [a / b for a, b in zip(series, medians[0])]
        lines.append(f"{label:50s} rounds ms: {' '.join(f'{v:.1f}' for v in series)} | median {statistics.median(series):.1f} ms"
                     f" | ratio to first {statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifacts", nargs="+", type=Path, help="artifact folders (the first is the ratio's base)")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per artifact per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision-hint", default=None, help="OpenVINO INFERENCE_PRECISION_HINT (e.g. f32)")
    args = p.parse_args(argv)
    missing = [str(a) for a in args.artifacts if not (a / "manifest.json").is_file()]
    if missing:
        p.error(f"not an artifact folder (no manifest.json): {', '.join(missing)}; pass folders `edgekd export` wrote")
    if args.rounds < 2:
        p.error(f"--rounds {args.rounds}: at least 2, so that each order (A B, B A) is timed")
    opened = [open_session(a, args.threads, args.precision_hint) for a in args.artifacts]
    medians = interleave([c for c, _ in opened], args.rounds, args.seconds)
    print("\n".join(report([label for _, label in opened], medians)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
