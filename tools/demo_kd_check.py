"""Is the demo's KD gain more than seed noise? Train the demo's teacher and student pairs (no
export, no bench) for several seeds with a student recipe and print the KD-vs-no-KD table per seed.

    .venv/bin/python tools/demo_kd_check.py --out /tmp/kdcheck --seeds 0,1
    .venv/bin/python tools/demo_kd_check.py --out /tmp/kdcheck --seeds 0,1 --kd kd:1 --temperature 2 --teacher-tta flip

Each seed changes the synthetic scenes, the teacher and the students (as ``edgekd demo --seed``
does); the KD student and its twin share the seed. Runs are reused when their outputs exist.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from edgekd.demo import DemoConfig, DemoResult, StudentRecipe, kd_pairs_markdown, train_demo_models


def _recipe(args: argparse.Namespace) -> StudentRecipe:
    base = StudentRecipe()
    changes = {k: v for k, v in (("supervised", tuple(args.supervised) if args.supervised else None),
                                 ("kd", tuple(args.kd) if args.kd else None), ("temperature", args.temperature),
                                 ("teacher_tta", args.teacher_tta), ("class_weights", args.class_weights), ("lr", args.lr))
               if v is not None}
    return replace(base, **changes)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--teacher-epochs", type=int, default=DemoConfig.teacher_epochs)
    p.add_argument("--student-epochs", type=int, default=DemoConfig.student_epochs)
    p.add_argument("--supervised", action="append", help="label terms of both twins (default: the demo's)")
    p.add_argument("--kd", action="append", help="teacher terms of the KD student (default: the demo's)")
    p.add_argument("--temperature", type=float)
    p.add_argument("--teacher-tta")
    p.add_argument("--class-weights", choices=["enet", "median"])
    p.add_argument("--lr", type=float)
    args = p.parse_args(argv)
    recipe = _recipe(args)
    print(f"recipe: {recipe}", flush=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        cfg = DemoConfig(out=args.out / f"seed{seed}", seed=seed, teacher_epochs=args.teacher_epochs,
                         student_epochs=args.student_epochs, recipe=recipe)
        result, t0 = DemoResult(), time.perf_counter()
        train_demo_models(cfg, result, say=lambda m: None)
        timings = ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items())
        print(f"\nseed {seed} ({time.perf_counter() - t0:.0f} s: {timings})\n{kd_pairs_markdown(result.kd_pairs)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
