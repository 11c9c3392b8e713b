"""`edgekd demo`: the whole loop end to end on embedded synthetic data."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgekd.cli._common import add_renamed_argument
from edgekd.demo import DemoConfig

NAME = "demo"
HELP = "Run the whole loop on synthetic AR scenes: teacher, students ± KD, export, bench on host, compare, report."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="where everything is written (default ./demo_out)")
    # defaults are the demo's recipe (docs/distillation.md, "The demo's recipe"), kept in one place
    p.add_argument("--teacher-epochs", type=int, default=DemoConfig.teacher_epochs, help=f"default {DemoConfig.teacher_epochs}")
    p.add_argument("--student-epochs", type=int, default=DemoConfig.student_epochs, help=f"default {DemoConfig.student_epochs}")
    add_renamed_argument(p, "--duration", "--bench-seconds", type=float, default=1.0, metavar="S",
                         help="seconds of timed inference per bench cell, as `bench --duration` (default 1)")
    p.add_argument("--coreml", choices=["auto", "on", "off"], default="auto", help="Core ML conversion (auto: when coremltools is installed)")
    p.add_argument("--seed", type=int, default=0, help="scenes, teacher and the first student seed (default 0)")
    p.add_argument("--student-seeds", type=int, default=DemoConfig.student_seeds, metavar="N",
                   help=f"train each KD student and its twin with seeds SEED … SEED+N-1 and report every Δ and their mean "
                        f"(one short run's Δ is mostly seed noise; default {DemoConfig.student_seeds}, 1 for a quick run)")


def run(args: argparse.Namespace) -> int:
    from edgekd.cli._common import progress_bar
    from edgekd.core.tables import table_console
    from edgekd.demo import run_demo

    console = table_console()
    cfg = DemoConfig(out=args.out, teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs,
                     bench_seconds=args.duration, coreml=args.coreml, seed=args.seed,
                     student_seeds=args.student_seeds)
    t0 = time.perf_counter()
    with progress_bar(True) as progress:
        result = run_demo(cfg, say=lambda message: progress.console.print(message, markup=False), progress=progress)
    console.print(f"\n[bold]edgekd demo finished in {time.perf_counter() - t0:.0f} s[/bold]")
    for name, seconds in result.timings.items():
        console.print(f"  {name:<30} {seconds:6.1f} s")
    console.print("\nWritten:")
    for name, path in result.paths.items():
        console.print(f"  {name:<14} {path}", markup=False)
    from edgekd.compare.format import print_terminal

    print_terminal(result.table, console)
    console.print("Pick for host: " + result.pick, markup=False, soft_wrap=True)
    _print_kd_pairs(console, result.kd_pairs)
    return 0


def _print_kd_pairs(console, pairs) -> None:
    """Last thing on screen: did distillation help, on images no training step saw, over the seeds?"""
    from rich.markup import escape

    from edgekd.core.tables import NUMBER, Col, FitTable
    from edgekd.demo import kd_pairs_title, kd_summaries

    table = FitTable([Col("student"), Col("no KD", NUMBER), Col("KD", NUMBER), Col("Δ mean", NUMBER), Col("Δ per seed"),
                      Col("wins")], title=escape(kd_pairs_title(pairs)))
    for s in kd_summaries(pairs):
        table.add_row(s.student, f"{100 * s.no_kd_mean:.2f}", f"{100 * s.kd_mean:.2f}", f"{s.mean_delta_points:+.2f}",
                      s.per_seed(1, "/"), f"{s.wins} of {len(s.pairs)}")
    console.print(table)
