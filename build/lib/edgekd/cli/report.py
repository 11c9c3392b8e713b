"""`edgekd report`: a self-contained static HTML report of benchmark results."""
from __future__ import annotations

import argparse

NAME = "report"
HELP = "Write a self-contained HTML report (tables, plots, pick, environment of each run) from benchmark results."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="*", default=["bench_results"],
                   help="result .jsonl files or folders (default: bench_results/)")
    p.add_argument("--out", required=True, help="output folder: OUT/report.html and OUT/plots/*.png")
    p.add_argument("--device", default=None, help="only this device profile's rows")


def run(args: argparse.Namespace) -> int:
    from edgekd.report import write_report

    path = write_report(args.results, args.out, device=args.device)
    print(f"report: {path.resolve()}")
    return 0
