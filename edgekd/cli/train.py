"""`edgekd train`: supervised training of a teacher or a baseline student."""
from __future__ import annotations

import argparse
import json

from edgekd.cli._common import (add_renamed_argument, add_torch_device_argument, print_json, progress_bar, size_arg,
                                torch_device_from_args)

NAME = "train"
HELP = "Train a teacher or a baseline student with cross-entropy (CPU for small runs, CUDA+AMP, DDP via torchrun)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", required=True, help="zoo model name (see `edgekd models`) or package.module:builder")
    p.add_argument("--data", required=True, help="dataset folder (CamVid layout or images/+masks/)")
    p.add_argument("--out", required=True, help="checkpoint to write, NAME.safetensors (train state goes beside it)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--schedule", choices=["poly", "cosine"], default="poly")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--crop-size", type=size_arg, default=None, metavar="HxW",
                   help="training crop (default 360x480, or the train images' size when they are smaller)")
    add_renamed_argument(p, "--eval-input-size", "--eval-size", type=size_arg, default=None, metavar="HxW",
                         help="run the model at HxW for the per-epoch validation, logits scored at the label size "
                              "(default: the images' native size)")
    add_renamed_argument(p, "--eval-images", "--val-images", type=int, default=None, metavar="N",
                         help="evaluate on the first N val images only")
    p.add_argument("--train-split", default="train", help="split to train on; SPLIT:-PREFIX leaves out frames whose name starts with PREFIX (e.g. train:-0006R0)")
    p.add_argument("--heldout-split", default=None, help="a second validation set reported every epoch, e.g. train:0006R0 (a drive left out of --train-split)")
    p.add_argument("--scale-range", type=_scale_range, default=(0.5, 2.0), help="random rescale range before cropping, LO,HI (default 0.5,2.0)")
    p.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm statistics fixed (fine-tuning a pretrained network)")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear learning-rate warm-up over the first N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    add_torch_device_argument(p, default="auto")
    p.add_argument("--resume", action="store_true", help="continue from OUT's train state if it exists")
    p.add_argument("--force", action="store_true", help="overwrite an existing OUT checkpoint (without it, train refuses)")
    p.add_argument("--max-steps-per-epoch", type=int, default=None, help="cap steps per epoch (quick runs)")
    p.add_argument("--arch-kwargs", type=json.loads, default={}, help='JSON keyword arguments for the builder, e.g. \'{"width": 0.5}\'')
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.add_argument("--no-progress", action="store_true")


def _scale_range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"scale range {text!r} is not LO,HI, e.g. 0.75,1.5") from None
    if not 0 < lo <= hi:
        raise argparse.ArgumentTypeError(f"scale range {text!r} needs 0 < LO <= HI, e.g. 0.75,1.5")
    return lo, hi


def common_config(args: argparse.Namespace) -> dict:
    """The TrainConfig fields both `train` and `distill` take from their shared flags."""
    return dict(
        data=args.data, out=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        optimizer=args.optimizer, schedule=args.schedule, weight_decay=args.weight_decay, crop_size=args.crop_size,
        scale_range=args.scale_range, eval_size=args.eval_input_size, val_images=args.eval_images, seed=args.seed,
        workers=args.workers, device=torch_device_from_args(args), resume=args.resume, force=args.force, max_steps_per_epoch=args.max_steps_per_epoch,
        arch_kwargs=args.arch_kwargs, train_split=args.train_split, heldout_split=args.heldout_split,
        freeze_bn=args.freeze_bn, warmup_steps=args.warmup_steps,
    )


def run(args: argparse.Namespace) -> int:
    from edgekd.training import TrainConfig, train_supervised

    from edgekd.training.runtime import is_main_process

    cfg = TrainConfig(arch=args.arch, **common_config(args))
    main = is_main_process()  # under torchrun only rank 0 shows progress and prints the outcome
    with progress_bar(main and not args.no_progress and not args.json) as progress:
        outcome = train_supervised(cfg, progress=progress)
    if not main:
        return 0
    last = outcome.history[-1] if outcome.history else {}
    summary = {"checkpoint": str(outcome.checkpoint), "epochs_run": outcome.epochs_run, "wall_s": outcome.wall_s, "last_epoch": last}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {outcome.checkpoint} after {outcome.epochs_run} epoch(s) in {outcome.wall_s:.1f} s; val mIoU {100.0 * last.get('val_miou', float('nan')):.2f} %")
    return 0
