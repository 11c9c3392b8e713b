#!/usr/bin/env python
"""CamVid reference study: CGNet teacher → students trained without KD and with KD methods.

Every run shares one schedule, seed and resolution; only the loss differs. Runs are
resumable (a checkpoint and train state per epoch); finished runs are skipped, so the command
can be repeated after an interruption. Results go to OUT/summary.json and OUT/study.log.

    .venv/bin/python tools/camvid_study.py --out ~/edgekd-camvid \
        --students lraspp_mobilenetv3_small --methods baseline,kd,cwd,dist --epochs 12

Stages: ``train`` (all runs), ``cache-speedup`` (teacher cache vs live teacher, per step).
Export and bench of the results use ``edgekd export`` / ``edgekd bench`` on OUT/checkpoints.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from edgekd.checkpoint import read_meta  # noqa: E402
from edgekd.cli._common import parse_size  # noqa: E402
from edgekd.training.distill import DistillConfig, distill  # noqa: E402

# One KD method = the loss terms added to cross-entropy (weights after the papers' defaults).
METHODS: dict[str, list[str]] = {
    "baseline": ["ce"],
    "kd": ["ce", "kd:1"],  # Hinton / SKD pixel-wise KD, τ = 4 (run-wide temperature)
    "cwd": ["ce", "cwd:3"],  # channel-wise distillation on logits, τ = 4, weight 3 (CWD paper)
    "dist": ["ce", "dist(tau=1):1"],  # DIST, β = γ = 1, τ = 1 as in its segmentation setting
    "bkd": ["ce", "bkd:1"],  # boundary-aware KD, band from the labels
    "kd-t1": ["ce", "kd(tau=1):1"],  # pixel-wise KD at τ = 1 (the usual choice in segmentation KD papers)
}


def log(out: Path, message: str) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
    print(line, flush=True)
    with open(out / "study.log", "a") as f:
        f.write(line + "\n")


def common_kwargs(args) -> dict:
    return dict(
        data=str(args.camvid), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer="sgd",
        schedule="poly", weight_decay=1e-4, crop_size=args.crop, scale_range=tuple(args.scale),
        eval_size=args.eval_size, seed=args.seed, workers=0, device="cpu",
    )


def run_one(args, student: str, method: str) -> dict:
    ckpt = args.out / "checkpoints" / f"{student}-{method}.safetensors"
    done = ckpt.is_file() and read_meta(ckpt).trained_with.get("epochs_completed") == args.epochs
    if done and (method == "baseline" or "kd" in read_meta(ckpt).metrics):
        log(args.out, f"skip {ckpt.name}: already trained for {args.epochs} epochs")
    else:
        log(args.out, f"start {ckpt.name} ({' + '.join(METHODS[method])})")
        t0 = time.perf_counter()
        # The baseline goes through the same trainer (same data pipeline and augmentation), CE only.
        teachers = [] if method == "baseline" else [str(args.teacher)]
        outcome = distill(DistillConfig(
            arch=student, out=str(ckpt), resume=True, teachers=teachers, teacher_archs=[args.teacher_arch] if teachers else [],
            losses=METHODS[method], temperature=4.0, cache="auto", cache_dir=str(args.out / "teacher_cache"),
            kd_metric_images=None, **common_kwargs(args),
        ))
        log(args.out, f"done {ckpt.name}: {outcome.epochs_run} epochs in {time.perf_counter() - t0:.0f} s")
    meta = read_meta(ckpt)
    return {
        "student": student, "method": method, "losses": METHODS[method], "checkpoint": str(ckpt),
        "val_miou": meta.metrics.get("miou"), "val_boundary_f": meta.metrics.get("boundary_f"),
        "epochs": meta.trained_with.get("epochs_completed"), "kd": meta.metrics.get("kd"),
        "teacher_cache": meta.trained_with.get("teacher_cache"), "params": meta.params,
    }


def train_seconds(ckpt: Path) -> float | None:
    """Wall time of all epochs, read back from the train state's history."""
    from edgekd.checkpoint import load_train_state
    from edgekd.training.loop import train_state_path

    path = train_state_path(ckpt)
    if not path.is_file():
        return None
    history = json.loads(load_train_state(path)["history_json"])
    return sum(h.get("train_seconds", 0.0) for h in history)


def measure_cache_speedup(args, student: str, steps: int = 10) -> dict:
    """Seconds per training step with the cached teacher vs the live teacher (same run otherwise).

    Both runs use the same student, batch, crop and threads; the cache already exists (built by
    the KD runs), so this times reading it, not building it. Build time is reported separately.
    """
    import tempfile

    result = {"steps": steps, "student": student, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("on", "off"):
            ckpt = Path(tmp) / f"speed-{mode}.safetensors"
            kwargs = {**common_kwargs(args), "epochs": 1}
            distill(DistillConfig(
                arch=student, out=str(ckpt), teachers=[str(args.teacher)], teacher_archs=[args.teacher_arch],
                losses=METHODS["kd"], cache=mode, cache_dir=str(args.out / "teacher_cache"), max_steps_per_epoch=steps,
                val_images=1, kd_metric_images=1, **kwargs,
            ))
            result[f"seconds_per_step_cache_{mode}"] = train_seconds(ckpt) / steps
    result["speedup"] = result["seconds_per_step_cache_off"] / result["seconds_per_step_cache_on"]
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="directory for checkpoints, teacher cache, logs, summary")
    p.add_argument("--camvid", type=Path, default=SHARED / "data" / "camvid")
    p.add_argument("--teacher", type=Path, default=SHARED / "models" / "cgnet_m3n21_camvid_trainval.pth")
    p.add_argument("--teacher-arch", default="cgnet_m3n21")
    p.add_argument("--students", default="lraspp_mobilenetv3_small")
    p.add_argument("--methods", default="baseline,kd,cwd,dist")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--crop", type=parse_size, default=(180, 240))
    p.add_argument("--scale", type=float, nargs=2, default=(0.4, 0.7), help="random rescale of the 360×480 image before cropping")
    p.add_argument("--eval-size", type=parse_size, default=(180, 240), help="val images are resized to this (labels stay native)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache-speedup-steps", type=int, default=10, help="steps timed with and without the teacher cache (0: skip)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (args.camvid, args.teacher):
        if not path.exists():
            p.error(f"{path} does not exist (the study needs CamVid and the CGNet teacher; see ../shared/data/README.md)")
    unknown = [m for m in args.methods.split(",") if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    log(args.out, f"study: {vars(args)}")
    rows = []
    for student in args.students.split(","):
        for method in args.methods.split(","):
            row = run_one(args, student, method)
            row["train_seconds"] = train_seconds(Path(row["checkpoint"]))
            rows.append(row)
            (args.out / "summary.json").write_text(json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "runs": rows}, indent=2))
    speedup = None
    if args.cache_speedup_steps and any(m != "baseline" for m in args.methods.split(",")):
        speedup = measure_cache_speedup(args, args.students.split(",")[0], args.cache_speedup_steps)
        log(args.out, f"teacher cache: {speedup}")
    (args.out / "summary.json").write_text(json.dumps(
        {"config": {k: str(v) for k, v in vars(args).items()}, "runs": rows, "teacher_cache_speedup": speedup}, indent=2))
    log(args.out, "summary: " + "; ".join(f"{r['student']}/{r['method']} mIoU {r['val_miou']:.4f}" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
