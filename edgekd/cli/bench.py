"""``edgekd bench --device NAME [ARTIFACT ...]``: benchmark artifacts on a device profile."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from edgekd.cli._common import add_renamed_argument

NAME = "bench"
HELP = "Benchmark exported artifacts on a device profile (latency, FPS, e2e, memory, accuracy, energy)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("artifacts", nargs="*", default=["artifacts"], metavar="ARTIFACT_DIR",
                   help="artifact folders, or folders holding many (default: artifacts/)")
    p.add_argument("--device", action="append", default=[], help="device profile name or YAML path (see `edgekd devices`); "
                   "repeat for a fleet: the devices run in parallel, one cell at a time each")
    p.add_argument("--fleet", type=Path, help="fleet YAML: 'devices:' entries {profile, name, host, port, serial, threads} (docs/bench.md)")
    p.add_argument("--input-size", default=None, metavar="HxW[,HxW...]",
                   help="only the artifacts at these input sizes (each artifact runs at its own size; default: all)")
    p.add_argument("--data", type=Path, help="dataset folder: accuracy through each backend on its val split")
    p.add_argument("--split", default="val", help="dataset split for accuracy (default val)")
    add_renamed_argument(p, "--eval-images", "--accuracy-images", type=int, metavar="N",
                         help="accuracy on the first N images of --split only")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of timed inference per cell (default 10)")
    p.add_argument("--min-iters", type=int, default=50, help="timed iterations at least (default 50)")
    p.add_argument("--warmup-max", type=float, default=10.0, help="warm-up stops after S seconds even if unstable (default 10)")
    p.add_argument("--e2e", type=float, default=5.0, help="seconds of end-to-end frames and of camera-paced frames (0: skip)")
    p.add_argument("--throughput", type=float, default=5.0, help="seconds of pipelined (async) throughput where offered (0: skip)")
    p.add_argument("--sustained", type=float, default=0.0, metavar="S", help="also run S seconds back to back, per-window figures")
    p.add_argument("--window", type=float, default=10.0, help="sustained-run window in seconds (default 10)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_ID",
                   help="continue a run: skip cells it already recorded (no RUN_ID: the device's latest run)")
    p.add_argument("--run-id", help="name for a new run's results file (default: UTC time + random suffix)")
    p.add_argument("--retry-failed", action="store_true", help="with --resume, run cells recorded as failed again")
    p.add_argument("--out", type=Path, default=Path("bench_results"), help="results folder (default bench_results/)")
    p.add_argument("--host", help="run on this ssh host (user@addr) with the profile's python and work dir")
    p.add_argument("--serial", help="adb profiles: the phone's serial (`adb devices`; default: the profile's, or the only one attached)")
    p.add_argument("--threads", type=int, help="override the profile's runtime threads")
    p.add_argument("--cell-timeout", type=float, help="kill a cell's worker after S seconds (default: from the budgets)")


def run(args: argparse.Namespace) -> int:
    from edgekd.bench.display import RichReporter
    from edgekd.bench.remote import SshTarget
    from edgekd.bench.runner import run_bench
    from edgekd.errors import EdgekdError
    from edgekd.profiles import load_profile

    if args.fleet or len(args.device) > 1:
        return _run_fleet(args)
    if not args.device:
        raise EdgekdError("name the device with --device PROFILE (repeat it, or pass --fleet FILE, for several)")
    profile = load_profile(args.device[0])
    if args.host:
        profile = profile.with_host(args.host)
    if args.threads:
        if args.threads < 1:
            raise EdgekdError(f"--threads {args.threads}: give a positive thread count")
        profile = profile.with_threads(args.threads)
    opts, run_id, artifacts = _options(args), _run_id(args), _artifacts(args)
    target = None
    if profile.connection.type == "ssh":
        target = SshTarget(profile.connection)
    elif profile.connection.type == "adb":
        from edgekd.bench.adb import AdbTarget

        target = AdbTarget(profile.connection, serial=args.serial)
    summary = run_bench(profile, artifacts, opts, args.out, resume=bool(args.resume), run_id=run_id,
                        target=target, reporter=RichReporter())
    failed = sum(r["status"] == "failed" for r in summary.written)
    print(f"{len(summary.written)} cell(s) written to {summary.path}"
          + (f", {summary.skipped_done} already recorded" if summary.skipped_done else "")
          + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0


def _options(args: argparse.Namespace):
    from edgekd.bench.runner import BenchOptions
    from edgekd.errors import EdgekdError

    if args.retry_failed and not args.resume:
        raise EdgekdError("--retry-failed only makes sense with --resume [RUN_ID]")
    return BenchOptions(
        duration_s=args.duration, min_iters=args.min_iters, warmup_max_s=args.warmup_max, e2e_s=args.e2e, paced_s=args.e2e,
        throughput_s=args.throughput, sustained_s=args.sustained, window_s=args.window, data=args.data, split=args.split,
        accuracy_images=args.eval_images, cell_timeout_s=args.cell_timeout, retry_failed=args.retry_failed,
    )


def _run_id(args: argparse.Namespace) -> str | None:
    from edgekd.errors import EdgekdError

    if args.run_id and args.resume:
        raise EdgekdError(f"--run-id {args.run_id} names a new run; to continue it pass --resume {args.run_id} alone")
    if args.run_id and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.run_id):
        raise EdgekdError(f"--run-id {args.run_id!r}: use letters, digits, '.', '_' and '-' only (it names a file)")
    return args.resume if isinstance(args.resume, str) else args.run_id


def _artifacts(args: argparse.Namespace) -> list:
    if args.input_size is None:
        return args.artifacts
    from edgekd.bench.plan import discover_artifacts, select_sizes
    from edgekd.input_sizes import parse_input_sizes

    return select_sizes(discover_artifacts(args.artifacts), parse_input_sizes(args.input_size))


def _run_fleet(args: argparse.Namespace) -> int:
    """Several devices at once (``--device`` repeated and/or ``--fleet FILE``); one summary line per device."""
    import threading

    from edgekd.bench.display import FleetReporter
    from edgekd.bench.fleet import fleet_device, load_fleet, run_fleet
    from edgekd.errors import EdgekdError

    if args.host or args.serial:
        raise EdgekdError("--host / --serial name one device's address; in a fleet give each device its own "
                          "'host:' / 'serial:' in the --fleet file")
    if args.threads is not None and args.threads < 1:
        raise EdgekdError(f"--threads {args.threads}: give a positive thread count")
    devices = [fleet_device(d, threads=args.threads) for d in args.device]
    devices += load_fleet(args.fleet) if args.fleet else []
    opts, run_id, artifacts = _options(args), _run_id(args), _artifacts(args)
    lock = threading.Lock()
    runs = run_fleet(devices, artifacts, opts, args.out, resume=bool(args.resume), run_id=run_id,
                     make_reporter=lambda d: FleetReporter(d.name, lock))
    bad = 0
    for run in runs:
        if run.error:
            bad += 1
            print(f"{run.device}: not run: {run.error}")
            continue
        s = run.summary
        bad += bool(run.failed)
        print(f"{run.device}: {len(s.written)} cell(s) written to {s.path}"
              + (f", {s.skipped_done} already recorded" if s.skipped_done else "")
              + (f"; {run.failed} failed" if run.failed else ""))
    return 1 if bad else 0
