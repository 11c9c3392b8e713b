"""`edgekd eval`: accuracy of a checkpoint on a dataset split."""
from __future__ import annotations

import argparse

from edgekd.cli._common import print_json, progress_bar, size_arg

NAME = "eval"
HELP = "Evaluate a checkpoint: mIoU, per-class IoU, pixel accuracy, boundary F-score, images/s."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="edgekd .safetensors, or a third-party .pth/.pt state dict with --arch")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="val", help="val, test, train (default val)")
    p.add_argument("--arch", default=None, help="architecture of a third-party state dict (zoo name or package.module:builder)")
    p.add_argument("--input-size", type=size_arg, default=None, help="resize inputs to HxW (default: native size)")
    p.add_argument("--max-images", type=int, default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from edgekd.checkpoint import load_checkpoint
    from edgekd.data import build_eval_transform, open_dataset
    from edgekd.evaluate import evaluate_model

    model, meta = load_checkpoint(args.checkpoint, arch=args.arch)
    dataset = open_dataset(args.data, args.split, transform=build_eval_transform(None))
    with progress_bar(not args.json) as progress:
        result = evaluate_model(model, meta.normalization, dataset, input_size=args.input_size, max_images=args.max_images, device=args.device, progress=progress)
    result = {"checkpoint": str(args.checkpoint), "arch": meta.arch, "dataset": dataset.info.name, "split": args.split, **result}
    if args.json:
        print_json(result)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{meta.arch} on {dataset.info.name}/{args.split} ({result['images']} images)")
    table.add_column("class")
    table.add_column("IoU", justify="right")
    for name, iou in result["per_class_iou"].items():
        table.add_row(name, "–" if iou is None else f"{100 * iou:.2f}")
    console = Console()
    console.print(table)
    console.print(
        f"mIoU {100 * result['miou']:.2f} · pixel acc {100 * result['pixel_accuracy']:.2f} · "
        f"boundary F ({result['boundary_tolerance_px']} px) {100 * result['boundary_f']:.2f} · {result['images_per_s']:.2f} images/s"
    )
    return 0
