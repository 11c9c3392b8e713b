"""`edgekd compare`: the comparison table of benchmark results, the pick per device, plots."""
from __future__ import annotations

import argparse
import sys

NAME = "compare"
HELP = "Compare benchmarked candidates: accuracy, KD metrics, latency, FPS, memory and the verdict against each device's budget."
FORMATS = ("table", "md", "csv", "json", "html")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="*", default=["bench_results"],
                   help="result .jsonl files or folders (default: bench_results/)")
    p.add_argument("--device", default=None, help="only this device profile's rows")
    p.add_argument("--sort", default=None, metavar="COLUMN",
                   help="sort by this column within each device (e.g. fps, miou, latency_p99_ms)")
    p.add_argument("--format", default="table", choices=FORMATS, help="table (terminal, default), md, csv, json or html")
    p.add_argument("--pick", action="store_true", help="pick the most accurate candidate meeting each device's budget")
    p.add_argument("--reference-curve", default=None, metavar="MODEL",
                   help="judge every candidate against MODEL's resolution curve (candidate name or arch): above/below "
                        "its mIoU interpolated at the candidate's p50 latency, same backend and precision")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write PNG plots (mIoU vs FPS, KD curves, latency, sustained) to DIR")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from edgekd.compare import compare_results, make_plots, pick_per_device
    from edgekd.compare.format import print_terminal, render
    from edgekd.compare.table import sort_table
    from edgekd.core.tables import table_console

    df = compare_results(args.results, device=args.device)
    err = Console(stderr=True)
    for warning in df.attrs.get("warnings", []):
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    if df.empty:
        err.print("no result rows found")
        return 1
    if args.reference_curve:
        from edgekd.compare.curve import add_curve_verdicts

        df = add_curve_verdicts(df, args.reference_curve)
    if args.sort:
        df = sort_table(df, args.sort)
    if args.format == "table":
        print_terminal(df, table_console())
    else:
        sys.stdout.write(render(df, args.format))
    if args.pick:
        # With a machine-readable --format the pick goes to stderr so stdout stays parseable.
        console = Console(width=250) if args.format == "table" else err
        for pick in pick_per_device(df).values():
            console.print(pick.text(), soft_wrap=True, markup=False, highlight=False)
    if args.plots:
        for path in make_plots(df, args.plots):
            err.print(f"plot: {path}", markup=False)
    return 0
