"""``edgekd data``: inspect a dataset folder, or write synthetic AR scenes / sequences."""
from __future__ import annotations

import argparse
import json
import time

from edgekd.cli._common import HelpFormatter, add_renamed_argument
from edgekd.data import DataError, generate_sequence, generate_synthetic_dataset, parse_size
from edgekd.data.synthetic import CAMERA_MOTIONS, DEFAULT_SIZE
from edgekd.data.summary import format_summary, summarize_dataset

NAME = "data"
HELP = "Inspect a segmentation dataset, or generate synthetic AR scenes and sequences."


def _size(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as err:  # EdgekdError is a ValueError: argparse prints it as a usage error
        raise argparse.ArgumentTypeError(str(err)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    ins = sub.add_parser("inspect", help="layout, classes, counts, sizes, class frequencies and problems of a dataset", formatter_class=HelpFormatter,
                         description="Check every item of a split; a bad dataset exits with status 2 and a one-line error.")
    ins.add_argument("dir", help="dataset folder (CamVid layout or images/ + masks/)")
    ins.add_argument("--split", default=None, help="split to check (default: train if present, else all)")
    ins.add_argument("--layout", default="auto", choices=["auto", "camvid", "folder"])
    add_renamed_argument(ins, "--inspect-images", "--max-items", type=int, default=None, metavar="N",
                         help="check only the first N items (image + mask)")
    ins.add_argument("--json", action="store_true", help="print the report as JSON")
    syn = sub.add_parser("synth", help="write a synthetic AR dataset (or, with --sequence, a video clip)", formatter_class=HelpFormatter,
                         description="Write synthetic AR scenes in the folder layout (images/, masks/, train.txt, val.txt, dataset.yaml).")
    syn.add_argument("out", help="output folder (must not exist or be empty, unless --force)")
    syn.add_argument("--num-train", type=int, default=None, metavar="N", help="training images (default 300)")
    syn.add_argument("--num-val", type=int, default=None, metavar="N", help="validation images (default 60)")
    add_renamed_argument(syn, "--image-size", "--size", type=_size, default=DEFAULT_SIZE, metavar="HxW", help="image size (default 240x320)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--sequence", type=int, default=None, metavar="N_FRAMES",
                     help="write one clip of N_FRAMES frames (one scene, moving camera) instead of a dataset")
    syn.add_argument("--camera-motion", default="handheld", choices=CAMERA_MOTIONS, help="camera path of --sequence")
    syn.add_argument("--force", action="store_true", help="replace OUT if it exists")


def run(args: argparse.Namespace) -> int:
    return _inspect(args) if args.data_command == "inspect" else _synth(args)


def _inspect(args: argparse.Namespace) -> int:
    if args.inspect_images is not None and args.inspect_images < 1:
        raise DataError(f"--inspect-images {args.inspect_images} must be at least 1")
    summary = summarize_dataset(args.dir, args.split, max_items=args.inspect_images, layout=args.layout)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    problems = summary["problems"]
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DataError(problems[0] + more)
    return 0


def _synth(args: argparse.Namespace) -> int:
    start = time.perf_counter_ns()
    if args.sequence is not None:
        if args.num_train is not None or args.num_val is not None:
            raise DataError("--sequence writes one clip; drop --num-train/--num-val (or drop --sequence for a dataset)")
        root = generate_sequence(args.out, num_frames=args.sequence, size=args.image_size, seed=args.seed,
                                 camera_motion=args.camera_motion, overwrite=args.force)
        count, what = args.sequence, f"frame sequence ({args.camera_motion} camera)"
    else:
        num_train = 300 if args.num_train is None else args.num_train
        num_val = 60 if args.num_val is None else args.num_val
        root = generate_synthetic_dataset(args.out, num_train=num_train, num_val=num_val, size=args.image_size,
                                          seed=args.seed, overwrite=args.force)
        count, what = num_train + num_val, f"dataset (train {num_train}, val {num_val})"
    seconds = (time.perf_counter_ns() - start) / 1e9
    h, w = args.image_size
    print(f"wrote synthetic {what} of {h}x{w} images to {root} "
          f"in {seconds:.1f} s ({1000 * seconds / max(count, 1):.1f} ms per image incl. PNG)")
    return 0
