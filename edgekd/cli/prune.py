"""`edgekd prune`: structured channel pruning (torch-pruning DepGraph) to a MACs or parameter target."""
from __future__ import annotations

import argparse

from edgekd.cli._common import print_json

NAME = "prune"
HELP = "Prune a checkpoint's channels (and residual blocks) to a MACs/params target; writes a rebuildable .safetensors."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="edgekd .safetensors, or a third-party .pth/.pt state dict with --arch")
    p.add_argument("--arch", default=None, help="architecture of a third-party state dict")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-macs", type=float, default=None, help="MACs of the result as a ratio of the parent's (0.5 = half)")
    target.add_argument("--target-params", type=float, default=None, help="parameters of the result as a ratio of the parent's")
    target.add_argument("--target-latency-ms", type=float, default=None, help="estimated latency on --device (not implemented yet)")
    p.add_argument("--device", default=None, help="device profile for --target-latency-ms")
    p.add_argument("--out", required=True, help="pruned checkpoint to write (.safetensors)")
    p.add_argument("--importance", default="magnitude", help="magnitude (L2 of the group's weights), bn (BatchNorm scale) "
                                                             "or taylor (|w·∂L/∂w| on --calib-images real images)")
    p.add_argument("--data", default=None, help="dataset folder for --importance taylor (its train split)")
    p.add_argument("--calib-images", type=int, default=16, help="images for the Taylor gradients (default 16)")
    p.add_argument("--iterative", type=int, default=1, metavar="STEPS", help="prune in STEPS equal steps, re-scoring between them")
    p.add_argument("--drop-blocks", type=int, default=0, help="also drop the last N residual blocks of the deepest stage")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from edgekd.prune.api import PruneTarget, prune_checkpoint

    if args.target_latency_ms is not None:
        target = PruneTarget("latency", args.target_latency_ms, args.device)
    elif args.target_macs is not None:
        target = PruneTarget("macs", args.target_macs)
    else:
        target = PruneTarget("params", args.target_params)
    result = prune_checkpoint(args.checkpoint, args.out, target, arch=args.arch, importance=args.importance, data=args.data,
                              calib_images=args.calib_images, iterative_steps=args.iterative,
                              drop_blocks_n=args.drop_blocks, force=args.force)
    if args.json:
        print_json(result.as_dict())
        return 0
    d = result.as_dict()
    for key, unit, scale in (("macs", "GMACs", 1e9), ("params", "M params", 1e6), ("file_bytes", "MB", 1e6)):
        b, a = d["before"][key] / scale, d["after"][key] / scale
        print(f"{key:>10}: {b:8.3f} -> {a:8.3f} {unit}  ({d['ratios'][key]:.3f}x)")
    print(f"channels removed per group: {result.fraction:.1%}; dropped blocks: {result.dropped_blocks or 'none'}")
    for name, why in result.skipped.items():
        print(f"  left whole: {name}: {why}")
    print(f"wrote {result.out} (plan in its metadata; load it anywhere edgekd loads checkpoints)")
    return 0
