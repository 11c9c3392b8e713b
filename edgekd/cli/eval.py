"""`edgekd eval`: accuracy of a checkpoint on a dataset split."""
from __future__ import annotations

import argparse

from edgekd.cli._common import add_renamed_argument, add_torch_device_argument, print_json, progress_bar, torch_device_from_args

NAME = "eval"
HELP = "Evaluate a checkpoint: mIoU, per-class IoU, pixel accuracy, boundary F-score, images/s."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="edgekd .safetensors, or a third-party .pth/.pt state dict with --arch")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="val", help="val, test, train (default val)")
    p.add_argument("--arch", default=None, help="architecture of a third-party state dict (zoo name or package.module:builder)")
    p.add_argument("--input-size", default=None,
                   help="run the model at HxW, or at each of several (360x480,240x320: one mIoU line per size); "
                        "logits are upsampled to the label size for scoring (default: the images' native size)")
    add_renamed_argument(p, "--eval-images", "--max-images", type=int, default=None, metavar="N",
                         help="evaluate on the first N images of the split only")
    add_torch_device_argument(p, default="cpu")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from edgekd.checkpoint import load_checkpoint
    from edgekd.data import build_eval_transform, open_dataset
    from edgekd.evaluate import evaluate_model
    from edgekd.input_sizes import check_input_size
    from edgekd.input_sizes import parse_input_sizes

    sizes = parse_input_sizes(args.input_size)
    model, meta = load_checkpoint(args.checkpoint, arch=args.arch)
    notes = {s: check_input_size(model, s, int(getattr(model, "output_stride", 1)), meta.arch) for s in sizes}
    dataset = open_dataset(args.data, args.split, transform=build_eval_transform(None))
    head = {"checkpoint": str(args.checkpoint), "arch": meta.arch, "dataset": dataset.info.name, "split": args.split}
    results = []
    with progress_bar(not args.json) as progress:
        for size in sizes or [None]:
            result = evaluate_model(model, meta.normalization, dataset, input_size=size, max_images=args.eval_images,
                                    device=torch_device_from_args(args), progress=progress,
                                    name=f"checkpoint {args.checkpoint} ({meta.arch})")
            if notes.get(size):
                result["input_size_note"] = notes[size]
            results.append({**head, **result})
    if args.json:
        print_json(results[0] if len(results) == 1 else results)
        return 0
    _print(results, meta.arch, dataset.info.name, args.split)
    return 0


def _size(result: dict) -> str:
    size = result["input_size"]
    return size if isinstance(size, str) else f"{size[0]}x{size[1]}"


def _print(results: list[dict], arch: str, dataset: str, split: str) -> None:
    """Per-class IoU, one column per input size, then one summary line per size."""
    from rich.markup import escape

    from edgekd.core.tables import NUMBER, Col, FitTable, table_console

    table = FitTable([Col("class")] + [Col(f"IoU @ {_size(r)}" if len(results) > 1 else "IoU", NUMBER) for r in results],
                     title=escape(f"{arch} on {dataset}/{split} ({results[0]['images']} images)"))
    for name in results[0]["per_class_iou"]:
        cells = [result["per_class_iou"][name] for result in results]
        table.add_row(escape(name), *("–" if iou is None else f"{100 * iou:.2f}" for iou in cells))
    console = table_console()
    console.print(table)
    for result in results:
        console.print(
            f"{_size(result)}: mIoU {100 * result['miou']:.2f} · pixel acc {100 * result['pixel_accuracy']:.2f} · "
            f"boundary F ({result['boundary_tolerance_px']} px) {100 * result['boundary_f']:.2f} · "
            f"{result['images_per_s']:.2f} images/s", highlight=False)
