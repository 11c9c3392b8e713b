"""Is the demo's KD gain more than seed noise? Train the demo's teacher and student pairs (no
export, no bench) for several seeds with a student recipe and print the KD-vs-no-KD table per seed.

    .venv/bin/python tools/demo_kd_check.py --out /tmp/kdcheck --seeds 0,1
    .venv/bin/python tools/demo_kd_check.py --out /tmp/kdcheck-t1 --seeds 0,1 --kd kd:1 --temperature 1 --reuse /tmp/kdcheck

Each seed changes the synthetic scenes, the teacher and the students (as ``edgekd demo --seed``
does); the KD student and its twin share the seed. Runs are reused when their outputs exist;
``--reuse DIR`` also takes from an earlier ``--out`` the scenes, the teacher (when trained for the
same epochs) with its logit cache, and the no-KD twins (when trained with the same config), so a
new recipe only trains its KD students.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

from edgekd.checkpoint import read_meta
from edgekd.demo import IMAGE_SIZE, DemoConfig, DemoResult, StudentRecipe, kd_pairs_markdown, student_configs, train_demo_models
from edgekd.training.loop import train_state_path

# DistillConfig fields that name where a run lives, or that a run without a teacher never reads.
_TWIN_IGNORED = {"out", "data", "cache_dir", "resume", "temperature", "teacher_tta"}


def _recipe(args: argparse.Namespace) -> StudentRecipe:
    base = StudentRecipe()
    changes = {k: v for k, v in (("supervised", tuple(args.supervised) if args.supervised else None),
                                 ("kd", tuple(args.kd) if args.kd else None), ("temperature", args.temperature),
                                 ("teacher_tta", args.teacher_tta), ("class_weights", args.class_weights), ("lr", args.lr))
               if v is not None}
    return replace(base, **changes)


def _link(src: Path, dst: Path) -> None:
    """Hard-link a file or a tree (copy across filesystems); finished runs are only read, and a
    resumed one replaces its files atomically, so the source is never changed."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_link_file, dirs_exist_ok=True)
    else:
        _link_file(src, dst)


def _link_file(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _twin_config(path: Path) -> dict:
    return {k: v for k, v in read_meta(path).trained_with.get("config", {}).items() if k not in _TWIN_IGNORED}


def _same_scenes(cfg: DemoConfig, source: Path) -> bool:
    spec = source / "data" / "synthetic.json"
    if not spec.is_file():
        return False
    scenes = json.loads(spec.read_text())
    return (scenes.get("seed"), scenes.get("num_train"), scenes.get("num_val"), scenes.get("size")) == (
        cfg.seed, cfg.num_train, cfg.num_val, list(IMAGE_SIZE))


def reuse_runs(cfg: DemoConfig, source: Path) -> list[str]:
    """Link into ``cfg.out`` what ``source`` (another ``--out``'s seed folder, same scenes) has
    already trained and ``cfg.out`` lacks: the scenes, a teacher of the same epochs with its logit
    caches, and every no-KD twin whose config equals the one ``cfg`` would train. Returns what was linked."""
    if not _same_scenes(cfg, source):
        return []
    src_ckpt, ckpt, linked = source / "checkpoints", cfg.out / "checkpoints", []
    if not (cfg.out / "data").exists():
        _link(source / "data", cfg.out / "data")
        linked.append("scenes")
    teacher = src_ckpt / "teacher.safetensors"
    if (not (ckpt / teacher.name).exists() and teacher.is_file()
            and read_meta(teacher).trained_with.get("epochs_completed") == cfg.teacher_epochs):
        for f in (teacher, train_state_path(teacher)):
            _link(f, ckpt / f.name)
        if (source / "teacher_cache").is_dir():
            _link(source / "teacher_cache", cfg.out / "teacher_cache")
        linked.append(f"{cfg.teacher_epochs}-epoch teacher")
    for twin, _ in student_configs(cfg, cfg.out / "data", ckpt / "teacher.safetensors"):
        old = src_ckpt / Path(twin.out).name
        want = json.loads(json.dumps({k: v for k, v in asdict(twin).items() if k not in _TWIN_IGNORED}))  # as stored
        if (not Path(twin.out).exists() and old.is_file()
                and read_meta(old).trained_with.get("epochs_completed") == twin.epochs and _twin_config(old) == want):
            for f in (old, train_state_path(old)):
                _link(f, ckpt / f.name)
            linked.append(Path(twin.out).stem)
    return linked


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--teacher-epochs", type=int, default=DemoConfig.teacher_epochs)
    p.add_argument("--student-epochs", type=int, default=DemoConfig.student_epochs)
    p.add_argument("--student-seeds", type=int, default=1,
                   help="student seeds per --seeds entry (default 1: each seed already changes scenes, teacher and students)")
    p.add_argument("--supervised", action="append", help="label terms of both twins (default: the demo's)")
    p.add_argument("--kd", action="append", help="teacher terms of the KD student (default: the demo's)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--teacher-tta")
    p.add_argument("--class-weights", choices=["enet", "median"])
    p.add_argument("--lr", type=float)
    p.add_argument("--reuse", type=Path, action="append", default=[],
                   help="an earlier --out to take scenes, teacher and no-KD twins from (repeatable; first match wins)")
    args = p.parse_args(argv)
    recipe = _recipe(args)
    print(f"recipe: {recipe}, teacher {args.teacher_epochs} epochs, students {args.student_epochs} epochs", flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = DemoConfig(out=args.out / f"seed{seed}", seed=seed, teacher_epochs=args.teacher_epochs,
                         student_epochs=args.student_epochs, student_seeds=args.student_seeds, recipe=recipe)
        for source in args.reuse:
            linked = reuse_runs(cfg, source / f"seed{seed}")
            if linked:
                print(f"seed {seed}: reused from {source}: {', '.join(linked)}", flush=True)
        result, t0 = DemoResult(), time.perf_counter()
        train_demo_models(cfg, result, say=lambda m: None)
        teacher_miou = 100 * read_meta(result.paths["teacher"]).metrics["miou"]
        timings = ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items())
        print(f"\nseed {seed} ({time.perf_counter() - t0:.0f} s: {timings}); teacher val mIoU {teacher_miou:.2f} %\n"
              f"{kd_pairs_markdown(result.kd_pairs)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
