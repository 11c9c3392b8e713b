"""`edgekd doctor`: pre-flight checks of a checkpoint or artifact for device profiles.

Exit codes: 0 when no finding is an error (warnings and info allowed), 1 when at least one is,
2 for bad input (unknown device, missing file) like every edgekd command.
"""
from __future__ import annotations

import argparse

NAME = "doctor"
HELP = ("Check a checkpoint or artifact against device profiles (weights, graph ops, shapes, memory, precision); "
        "--fix flushes subnormals. Exit code 1 when any finding is an error, else 0.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", help="checkpoint (.safetensors, or .pt/.pth with --arch) or artifact folder (with manifest.json)")
    p.add_argument("--arch", default=None, help="architecture of a third-party state dict (zoo name)")
    p.add_argument("--num-classes", type=int, default=None, help="class count of a third-party state dict (default: inferred)")
    p.add_argument("--device", action="append", default=None, metavar="NAME",
                   help="device profile to check against (repeat for several; default: host)")
    p.add_argument("--fix", default=None, metavar="OUT.safetensors",
                   help="write a copy with subnormal weights flushed to zero; reports parity and the speed change here")
    p.add_argument("--force", action="store_true", help="overwrite an existing --fix output")
    p.add_argument("--data", default=None, help="labelled dataset (val split) for --fix parity (default: synthetic scenes)")
    p.add_argument("--calib", default=None, help="calibration dataset an INT8 export would use (checked for size)")
    p.add_argument("--threads", type=int, default=2, help="threads for the --fix speed measurement (default 2)")
    p.add_argument("--speed-iters", type=int, default=5, help="timed iterations per runtime for --fix (default 5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from edgekd.cli._common import print_json
    from edgekd.doctor import run_doctor
    from edgekd.doctor.report import render

    err = Console(stderr=True)
    report = run_doctor(args.target, args.device, args.fix, arch=args.arch, num_classes=args.num_classes, data=args.data,
                        calib=args.calib, threads=args.threads, speed_iters=args.speed_iters, force=args.force,
                        log=(lambda m: err.print(m, style="dim", markup=False)) if not args.json else None)
    if args.json:
        print_json(report.to_dict())
    else:
        from edgekd.core.tables import table_console

        render(report, table_console())
    return report.exit_code
