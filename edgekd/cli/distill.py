"""`edgekd distill`: train a student from frozen teacher(s) with KD losses, or run a recipe."""
from __future__ import annotations

import argparse

from edgekd.cli._common import add_renamed_argument, print_json, progress_bar, size_arg
from edgekd.cli.train import add_arguments as add_train_arguments, common_config

NAME = "distill"
HELP = "Distil a student from one or more frozen teachers (losses NAME[:WEIGHT]); or run a YAML recipe (teacher-assistant chains)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--list-losses", action="store_true", help="print the loss catalogue (names, options, spec syntax) and exit")
    p.add_argument("--recipe", default=None, help="YAML recipe (one run, or stages for T → TA → S chains); other flags are ignored")
    p.add_argument("--teacher", action="append", default=[], help="teacher checkpoint (repeat for several teachers)")
    p.add_argument("--teacher-arch", action="append", default=[], help="architecture of a third-party teacher file, in --teacher order")
    p.add_argument("--teacher-weight", action="append", type=float, default=None, help="weight of each teacher (multi-teacher)")
    p.add_argument("--teacher-mixing", choices=["average", "confidence"], default="average")
    p.add_argument("--student", default=None, help="student architecture (zoo name or package.module:builder)")
    p.add_argument("--loss", action="append", default=None, help="loss term NAME[:WEIGHT], repeatable (default: ce, kd)")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--cache", choices=["auto", "on", "off"], default="auto", help="teacher-logit cache (auto: when all losses use logits only)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--image-size", type=size_arg, default=None, help="resize dataset images to HxW before augmenting")
    p.add_argument("--init", default=None, help="start the student from these weights (edgekd checkpoint, pruned or not, or a third-party .pth with --init-arch)")
    p.add_argument("--init-arch", default=None, help="architecture of a third-party --init file")
    add_renamed_argument(p, "--student-input-size", "--student-size", type=size_arg, default=None, metavar="HxW",
                   help="resolution distillation: the student runs at HxW, teacher and labels at the crop size (val at HxW too)")
    p.add_argument("--color-jitter", type=float, default=0.0, help="function matching: brightness/contrast/saturation jitter (live teacher)")
    p.add_argument("--cutmix", type=float, default=0.0, help="function matching: CutMix probability per batch (live teacher)")
    p.add_argument("--class-weights", choices=["enet", "median"], default=None,
                   help="class-balanced ce/ohem: weights from the train labels, 1/ln(1.02+p) (enet) or median frequency")
    p.add_argument("--teacher-tta", default=None,
                   help="stronger teacher targets: logits averaged over views, e.g. flip or flip,scales=0.75,1.25 (cached)")
    p.add_argument("--qat", action="store_true",
                   help="quantisation-aware distillation: fine-tune the --init student with NNCF fake quantisation (INT8), "
                        "the FP32 --init as teacher unless --teacher is given; export it with --precision int8")
    p.add_argument("--qat-calib-images", type=int, default=32, help="training images that initialise the quantiser ranges (default 32)")
    add_train_arguments(p)
    for action in p._actions:  # --arch is --student here; --data/--out may come from a recipe
        if action.dest in ("arch", "data", "out"):
            action.required = False


def _config_from_args(args):
    from edgekd.training.distill import DistillConfig

    from edgekd.errors import EdgekdError

    if args.student and args.arch and args.student != args.arch:
        raise EdgekdError(f"--arch {args.arch!r} and --student {args.student!r} disagree; in distill both name the "
                          "student's architecture: pass one of them")
    arch = args.student or args.arch
    missing = [f for f, v in (("--student", arch or args.init), ("--data", args.data), ("--out", args.out)) if not v]
    if missing:
        raise EdgekdError(f"missing {', '.join(missing)} (or pass --recipe FILE)")
    return DistillConfig(
        arch=arch, **common_config(args),
        teachers=args.teacher, teacher_archs=args.teacher_arch, teacher_weights=args.teacher_weight,
        teacher_mixing=args.teacher_mixing, losses=args.loss or ["ce", "kd"], temperature=args.temperature,
        cache=args.cache, cache_dir=args.cache_dir, image_size=args.image_size, init=args.init, init_arch=args.init_arch,
        student_size=args.student_input_size, color_jitter=args.color_jitter, cutmix=args.cutmix,
        class_weights=args.class_weights, teacher_tta=args.teacher_tta,
        qat=args.qat, qat_calib_images=args.qat_calib_images,
    )


def print_loss_catalogue() -> None:
    from edgekd.losses import list_losses, loss_options

    print("Loss spec: NAME[(KEY=VALUE,...)][@FEATURE[/TEACHER_FEATURE]][:WEIGHT], one per --loss, e.g.")
    print("  --loss ce --loss kd(tau=4):1 --loss fitnet@stage3:0.5 --loss cwd(tau=4)@stage4/layer4:50")
    print("Features are keys of the model's forward_features (see `edgekd models`); tau follows --temperature where marked *.\n")
    for entry in list_losses():
        options = ", ".join(f"{k}={'*' if k == 'tau' and entry.follows_temperature else v}" for k, v in loss_options(entry).items())
        needs = "teacher" if entry.needs_teacher else "labels"
        on = "/".join(sorted(entry.inputs))
        print(f"{entry.name:7} [{needs}; {on}] {entry.summary}")
        print(f"{'':7} options: {options or '(none)'}")


def stage_summary(name: str, outcome) -> list[str]:
    """The lines printed when a stage ends: checkpoint, training time, mIoU, then each teacher cache —
    built now (and how long that took, which the training time leaves out) or reused, and where it lives."""
    last = outcome.history[-1] if outcome.history else {}
    lines = [f"[{name}] wrote {outcome.checkpoint}; training {outcome.wall_s:.1f} s; "
             f"val mIoU {100.0 * last.get('val_miou', float('nan')):.2f} %"]
    for cache in outcome.teacher_cache:
        how = f"built now in {cache['build_seconds']:.1f} s" if cache["built"] else "reused (built by an earlier run)"
        lines.append(f"[{name}] teacher-logit cache {how}: {cache['path']}")
    return lines


def run(args: argparse.Namespace) -> int:
    from edgekd.training.recipe import load_recipe, run_stages

    from edgekd.training.runtime import is_main_process

    if args.list_losses:
        print_loss_catalogue()
        return 0
    stages = load_recipe(args.recipe) if args.recipe else [("main", _config_from_args(args))]
    main = is_main_process()  # under torchrun only rank 0 shows progress and prints the outcome

    def done(name: str, outcome) -> None:
        if main and not args.json:
            for line in stage_summary(name, outcome):
                print(line)

    with progress_bar(main and not args.no_progress and not args.json) as progress:
        summaries = run_stages(stages, progress=progress, on_stage_done=done)
    if main and args.json:
        print_json(summaries)
    return 0
