#!/usr/bin/env python
"""Students worth deploying: pretrained / pruned / lower-resolution students of CGNet on CamVid,
each judged against the teacher's own resolution curve.

Runs (``--runs``, all by default; each a real ``edgekd`` command line, resumable):

``espnet_ce`` / ``espnet_kd`` / ``espnet_dist`` / ``espnet_cwd``
    ESPNet (pretrained on CamVid train) fine-tuned with CE only, or CE + pixel KD / DIST / CWD from
    CGNet run live on the same function-matching augmentation (colour jitter, CutMix, rescale): the
    CE run is the fair baseline of each KD run (same schedule, seed, augmentation).
``cgnet_macs050_*`` / ``cgnet_macs030_*``
    CGNet pruned to 0.5× / 0.3× MACs, recovered with CE only or CE + KD + FitNet on stage 3 from the
    unpruned CGNet (the natural teacher of its own pruned self).
``cgnet240_ce`` / ``cgnet240_kd``
    CGNet's own weights fine-tuned at 240×320 (resolution distillation: the KD teacher sees the
    full 360×480 crop).

Every run trains on ``train:-0006R0`` and reports ``train:0006R0`` (drive 0006R0, 101 frames)
beside val every epoch. What those splits mean per student (state it beside every figure):
ESPNet was pretrained on all of CamVid train, so it has seen 0006R0 (its held-out score measures
how much of it the fine-tune forgets) but never val's frames; CGNet was trained on train+val, so
both splits are seen data for anything initialised from it, and only relative positions on one
split (against CGNet's own curve, same split) carry information.

Stages (``--stages``, in order, each skipping what is done):

``prune``  the pruned CGNets (``edgekd prune``: 0.5× MACs; 0.3× MACs with 6 stage-3 blocks dropped)
``train``  the runs, ``--jobs`` at a time, one torch thread each; logs in OUT/logs/RUN.log
``eval``   every finished run and the reference models on val and on train:0006R0 (all images)
``export`` ONNX Runtime and OpenVINO FP32/INT8 at each run's own input size; the references at
           the resolution-curve sizes (FP32 only: they are the baseline front); artifacts made from an
           older version of a checkpoint (an epoch saved before training ended) are exported again
``bench``  every artifact on ``host`` in one bench run with accuracy on all val images
``table``  OUT/study.md: val / held-out mIoU, params, MACs, file size, p50 and FPS per runtime,
           checkpoint sha256, position against CGNet's resolution curve

    .venv/bin/python tools/student_study.py --out ~/edgekd-students --jobs 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from edgekd.checkpoint import read_meta, sha256_file  # noqa: E402
from edgekd.cli._common import add_renamed_argument  # noqa: E402

CAMVID = SHARED / "data" / "camvid"
CGNET = SHARED / "models" / "cgnet_m3n21_camvid_trainval.pth"
ESPNET = SHARED / "models" / "espnet_p2q8_camvid.pth"
TRAIN, HELDOUT = "train:-0006R0", "train:0006R0"

# Function matching (Beyer et al. 2022): the teacher runs live on the student's augmented input.
FM_AUGMENT = ["--color-jitter", "0.3", "--cutmix", "0.5", "--scale-range", "0.75,1.5", "--cache", "off"]
# Pretrained networks: AdamW at a small lr (ESPNet's Adam-trained weights diverge under SGD even at
# lr 5e-4). ESPNet keeps its BatchNorm statistics (8-image augmented batches would overwrite them);
# CGNet at 240×320 re-estimates them at the new input size.
FINE_TUNE = ["--optimizer", "adamw", "--lr", "1e-4", "--batch-size", "8", "--seed", "0"]
TEACHER = ["--teacher", str(CGNET), "--teacher-arch", "cgnet_m3n21"]

RUNS: dict[str, dict] = {
    "espnet_ce": {"init": (ESPNET, "espnet_p2q8"), "losses": ["ce"], "epochs": 20, "extra": ["--freeze-bn"]},
    "espnet_kd": {"init": (ESPNET, "espnet_p2q8"), "losses": ["ce", "kd"], "epochs": 20, "extra": ["--freeze-bn", "--temperature", "1"]},
    "espnet_dist": {"init": (ESPNET, "espnet_p2q8"), "losses": ["ce", "dist(tau=1):1"], "epochs": 20, "extra": ["--freeze-bn"]},
    # CWD as in tools/camvid_study.py (channel-wise on logits, τ 4, weight 3: the CWD paper's setting)
    "espnet_cwd": {"init": (ESPNET, "espnet_p2q8"), "losses": ["ce", "cwd:3"], "epochs": 20, "extra": ["--freeze-bn", "--temperature", "4"]},
    "cgnet240_ce": {"init": (CGNET, "cgnet_m3n21"), "losses": ["ce"], "epochs": 8,
                    "extra": ["--student-input-size", "240x320", "--lr", "5e-5"]},
    "cgnet240_kd": {"init": (CGNET, "cgnet_m3n21"), "losses": ["ce", "kd"], "epochs": 8,
                    "extra": ["--student-input-size", "240x320", "--lr", "5e-5", "--temperature", "1"]},
}
# Pruned CGNets (stage ``prune``), recovered from the unpruned parent: logit KD + feature KD on stage 3
# (1x1 adapter where the pruned width differs) vs CE only. SGD-free like the fine-tunes above.
PRUNES = {
    "cgnet_macs050": ["--target-macs", "0.5"],
    "cgnet_macs030": ["--target-macs", "0.3", "--drop-blocks", "6"],
}
for _plan in PRUNES:
    RUNS[f"{_plan}_ce"] = {"init": _plan, "losses": ["ce"], "epochs": 30, "extra": ["--lr", "5e-4"]}
    RUNS[f"{_plan}_kd"] = {"init": _plan, "losses": ["ce", "kd", "fitnet@stage3:0.5"], "epochs": 30,
                           "extra": ["--lr", "5e-4", "--temperature", "1"]}
# The committed pruned student: the KD recovery on a 12-epoch schedule (the 30-epoch run plateaued from
# epoch 9 on; the poly schedule then decays to zero by epoch 12), its CE-only twin, and the 0.29x pair on
# the same schedule.
for _plan in PRUNES:
    for _kind in ("ce", "kd"):
        RUNS[f"{_plan}_{_kind}12"] = {**RUNS[f"{_plan}_{_kind}"], "epochs": 12}
# The baseline front: each reference model at the sizes of the curve (ESPNet needs /8).
REFERENCES = {
    "cgnet_m3n21_camvid_trainval": (CGNET, "cgnet_m3n21", "360x480,270x360,240x320,180x240"),
    "espnet_p2q8_camvid": (ESPNET, "espnet_p2q8", "360x480,272x360,240x320,184x240"),
}
EXPORT_TARGETS = "onnxruntime:fp32,onnxruntime:int8,openvino:fp32,openvino:int8"
STAGES = ("prune", "train", "eval", "export", "bench", "table")


def log(out: Path, message: str) -> None:
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}"
    print(line, flush=True)
    with open(out / "study.log", "a") as f:
        f.write(line + "\n")


def edgekd_argv(*argv: str) -> list[str]:
    return [sys.executable, "-m", "edgekd", *argv]


def edgekd_cli(*argv: str, stdout=None) -> None:
    """Run one ``edgekd`` command in a child process: the same command a user would type."""
    print("$ edgekd " + " ".join(argv), flush=True)
    subprocess.run(edgekd_argv(*argv), check=True, stdout=stdout)


def checkpoint(out: Path, run: str) -> Path:
    return out / f"{run}.safetensors"


def distill_argv(out: Path, run: str) -> list[str]:
    """The ``edgekd distill`` command line of one run (later flags win: a run's extras override)."""
    spec = RUNS[run]
    if isinstance(spec["init"], str):  # a pruned checkpoint of the prune stage (an edgekd checkpoint: no arch needed)
        argv = ["distill", "--init", str(out / f"{spec['init']}.safetensors"), *TEACHER]
    else:
        init, init_arch = spec["init"]
        argv = ["distill", "--init", str(init), "--init-arch", init_arch, *TEACHER]
    for loss in spec["losses"]:
        argv += ["--loss", loss]
    argv += ["--data", str(CAMVID), "--train-split", TRAIN, "--heldout-split", HELDOUT, "--epochs", str(spec["epochs"]),
             "--crop-size", "360x480", *FINE_TUNE, *FM_AUGMENT, *spec["extra"],
             "--out", str(checkpoint(out, run)), "--resume", "--no-progress"]
    return argv


def prune_all(args) -> None:
    """The pruned CGNets the ``cgnet_macs*`` runs start from (skipped when they exist)."""
    for plan, flags in PRUNES.items():
        target = args.out / f"{plan}.safetensors"
        if not target.is_file():
            edgekd_cli("prune", str(CGNET), "--arch", "cgnet_m3n21", *flags, "--out", str(target), "--json")


def is_trained(out: Path, run: str) -> bool:
    """All epochs done and, for KD runs, the KD metrics written (distill adds them after the last epoch)."""
    ckpt = checkpoint(out, run)
    if not ckpt.is_file():
        return False
    meta = read_meta(ckpt)
    needs_kd = RUNS[run]["losses"] != ["ce"]
    return meta.trained_with.get("epochs_completed") == RUNS[run]["epochs"] and (not needs_kd or "kd" in meta.metrics)


def train_all(args) -> None:
    """Run the pending runs, ``--jobs`` at a time, each a one-thread ``edgekd distill`` process."""
    pending = [r for r in args.runs if not is_trained(args.out, r)]
    (args.out / "logs").mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    running: list[tuple[str, subprocess.Popen]] = []
    failed = []
    while pending or running:
        while pending and len(running) < args.jobs:
            run = pending.pop(0)
            log(args.out, f"start {run}: edgekd {' '.join(distill_argv(args.out, run))}")
            with open(args.out / "logs" / f"{run}.log", "a") as f:
                running.append((run, subprocess.Popen(edgekd_argv(*distill_argv(args.out, run)), stdout=f, stderr=f, env=env)))
        time.sleep(5)
        for run, child in list(running):
            if child.poll() is not None:
                running.remove((run, child))
                log(args.out, f"{run} exited with {child.returncode}")
                if child.returncode != 0:
                    failed.append(run)
    if failed:
        raise SystemExit(f"run(s) {', '.join(failed)} failed; see {args.out}/logs/RUN.log, then rerun (finished epochs are kept)")


def candidates(args) -> list[tuple[str, Path, str | None, str]]:
    """(name, checkpoint, arch for third-party files, input sizes) of every model the study judges."""
    rows = [(r, checkpoint(args.out, r), None, "x".join(map(str, read_meta(checkpoint(args.out, r)).input_size)))
            for r in args.runs if is_trained(args.out, r)]
    return rows + [(name, path, arch, sizes) for name, (path, arch, sizes) in REFERENCES.items()]


def eval_all(args) -> None:
    """mIoU on all val and all held-out-drive images at each model's own input size(s)."""
    folder = args.out / "eval"
    folder.mkdir(exist_ok=True)
    for name, path, arch, sizes in candidates(args):
        for split in ("val", HELDOUT):
            target = folder / f"{name}-{split.replace(':', '_')}.json"
            if target.is_file():
                continue
            with open(target.with_suffix(".tmp"), "w") as f:
                edgekd_cli("eval", str(path), *(["--arch", arch] if arch else []), "--data", str(CAMVID), "--split", split,
                           "--input-size", sizes, "--json", stdout=f)
            target.with_suffix(".tmp").replace(target)


def stale_artifacts(root: Path, checkpoint: Path) -> list[Path]:
    """Artifact folders under ``root`` exported from another version of ``checkpoint`` (e.g. an epoch
    saved before training finished): their manifests' source sha256 is not the file's now."""
    digest = sha256_file(checkpoint)
    return [m.parent for m in sorted(root.glob("*/manifest.json"))
            if (json.loads(m.read_text()).get("source") or {}).get("sha256") != digest]


def export_all(args) -> None:
    for name, path, arch, sizes in candidates(args):
        root = args.out / "artifacts" / path.stem
        stale = stale_artifacts(root, path) if root.is_dir() else []
        if stale:
            log(args.out, f"re-export {name}: {', '.join(p.name for p in stale)} came from an older {path.name}")
            shutil.rmtree(root)
        if root.is_dir() and any(root.iterdir()):
            log(args.out, f"skip export of {name}: {root} exists (made from this {path.name})")
            continue
        targets = "onnxruntime:fp32,openvino:fp32" if arch else EXPORT_TARGETS
        t0 = time.perf_counter()
        edgekd_cli("export", str(path), *(["--arch", arch] if arch else []), "--backend", targets, "--input-size", sizes,
                   "--calib", str(CAMVID), "--data", str(CAMVID), "--out", str(args.out / "artifacts"))
        log(args.out, f"exported {name} in {time.perf_counter() - t0:.0f} s")


def bench_all(args) -> None:
    """Every artifact in one bench run (same machine state for students and the reference curve)."""
    folders = sorted(str(p) for p in (args.out / "artifacts").glob("*/*") if (p / "manifest.json").is_file())
    run_file = args.results / Path(args.device).stem / f"{args.run_id}.jsonl"
    run = ["--resume", args.run_id] if run_file.is_file() else ["--run-id", args.run_id]
    t0 = time.perf_counter()
    edgekd_cli("bench", "--device", args.device, *folders, "--data", str(CAMVID), "--duration", str(args.duration),
               "--warmup-max", "3", "--e2e", "1", "--throughput", "0", "--out", str(args.results), *run)
    log(args.out, f"bench done in {time.perf_counter() - t0:.0f} s: {run_file}")


def _size_label(size) -> str:
    return size if isinstance(size, str) else f"{size[0]}x{size[1]}"


def _eval_miou(args, name: str, split: str) -> dict[str, float]:
    """{HxW: mIoU %} from the eval stage's JSON (one object, or a list with one per input size)."""
    path = args.out / "eval" / f"{name}-{split.replace(':', '_')}.json"
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {_size_label(r["input_size"]): 100 * r["miou"] for r in (data if isinstance(data, list) else [data])}


def _bench_rows(args) -> list[dict]:
    path = args.results / Path(args.device).stem / f"{args.run_id}.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_table(args) -> None:
    """One line per bench cell: the model's split scores beside its speed through that runtime."""
    names = {path.stem: name for name, path, _, _ in candidates(args)}
    lines = [
        "| model | size | runtime | val mIoU (bench) | 0006R0 mIoU | params | GMACs | p50 ms [95% CI] | FPS | sha256 |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in sorted(_bench_rows(args), key=lambda r: (r["candidate"]["label"])):
        cand, stem = row["candidate"], Path(row["candidate"]["artifact_dir"]).parent.name
        name = names.get(stem, stem)
        size = _size_label(row["input_size"])
        held = _eval_miou(args, name, HELDOUT).get(size)
        acc = row.get("accuracy") or {}
        lat = row.get("latency_ms") or {}
        ci = lat.get("p50_ci")
        runtime = f"{row['backend']['name']}-{row['precision_requested']}"
        ok = row["status"] == "ok"
        lines.append("| " + " | ".join([
            name, size, runtime if ok else f"{runtime} ({row['status']})",
            _fmt(100 * acc["miou"] if acc.get("miou") is not None else None), _fmt(held),
            f"{cand['params'] / 1e6:.2f} M", f"{cand['macs'] / 1e9:.2f}",
            (_fmt(lat.get("p50")) + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else "")) if ok else "—",
            _fmt(row.get("fps_sync")) if ok else "—",
            "(reference)" if name in REFERENCES else cand["checkpoint_sha256"][:12],
        ]) + " |")
    cpu = next((r["host"]["cpu"] for r in _bench_rows(args)), "unknown CPU")
    notes = [
        "", f"CPU: {cpu}. val = CamVid val (101 frames of drive 0016E5, through each runtime); "
        "0006R0 = the 101 train frames of drive 0006R0 (PyTorch FP32 eval), left out of every fine-tune.",
        "ESPNet was pretrained on all of CamVid train (it has seen 0006R0, not val); CGNet on train+val "
        "(both splits are seen data for it and every cgnet* run: compare those only against CGNet's own curve).",
    ]
    (args.out / "study.md").write_text("\n".join(lines + notes) + "\n")
    (args.out / "study_summary.md").write_text("\n".join(summary_lines(args) + notes) + "\n")
    log(args.out, f"wrote {args.out / 'study.md'} and {args.out / 'study_summary.md'}")


RUNTIMES = ("onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8")


def summary_lines(args) -> list[str]:
    """One line per model and input size (the README's table): PyTorch mIoU on both splits, size, and
    p50 / FPS through each runtime of the one bench run ("—" where a runtime was not exported)."""
    names = {path.stem: name for name, path, _, _ in candidates(args)}
    cells: dict[tuple[str, str], dict] = {}
    for row in _bench_rows(args):
        name = names.get(Path(row["candidate"]["artifact_dir"]).parent.name)
        if name is None:
            continue
        entry = cells.setdefault((name, _size_label(row["input_size"])), {"candidate": row["candidate"]})
        if row["status"] == "ok":
            entry[f"{row['backend']['name']}-{row['precision_requested']}"] = row
    lines = ["| model | input | val mIoU | 0006R0 mIoU | params | GMACs | " + " | ".join(f"{r} p50 ms / FPS" for r in RUNTIMES) + " |",
             "|---|---|---:|---:|---:|---:|" + "---:|" * len(RUNTIMES)]
    order = {name: i for i, (name, *_rest) in enumerate(candidates(args))}
    paths = {name: (path, arch) for name, path, arch, _ in candidates(args)}
    for (name, size), entry in sorted(cells.items(), key=lambda kv: (order[kv[0][0]], -int(kv[0][1].split("x")[0]))):
        cand = entry["candidate"]
        speed = [f"{_fmt(entry[r]['latency_ms']['p50'])} / {_fmt(entry[r].get('fps_sync'), 0)}" if r in entry else "—" for r in RUNTIMES]
        lines.append("| " + " | ".join([name, size, _fmt(_eval_miou(args, name, "val").get(size)),
                                         _fmt(_eval_miou(args, name, HELDOUT).get(size)), f"{cand['params'] / 1e6:.2f} M",
                                         f"{_network_macs(*paths[name], size, cand['macs']) / 1e9:.2f}", *speed]) + " |")
    return lines


def _network_macs(path: Path, arch: str | None, size: str, fallback: int) -> int:
    """MACs of the checkpoint's own network (a pruned one is smaller than its architecture; bench rows
    exported before the manifest recorded ``macs`` carry the unpruned architecture's count)."""
    if not path.is_file():
        return fallback
    from edgekd.checkpoint import load_checkpoint
    from edgekd.models.complexity import count_macs

    model, _ = load_checkpoint(path, arch=arch)
    return count_macs(model, tuple(int(v) for v in size.split("x")))



def _fmt(value, digits: int = 1) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for checkpoints, logs, eval JSON, artifacts, study.md")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, in order: {', '.join(STAGES)}")
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated subset of {', '.join(RUNS)}")
    p.add_argument("--jobs", type=int, default=2, help="runs trained at once (one torch thread each; 2 suits 2 cores)")
    p.add_argument("--results", type=Path, default=ROOT / "bench_results", help="bench results folder")
    p.add_argument("--run-id", default="student-study", help="bench rows go to RESULTS/host/RUN_ID.jsonl")
    p.add_argument("--device", default="host", help="device profile name or YAML file (e.g. host with an f32 OpenVINO hint)")
    add_renamed_argument(p, "--duration", "--bench-seconds", type=float, default=3.0, help="timed seconds per bench cell")
    args = p.parse_args(argv)
    args.runs = [r for r in args.runs.split(",") if r]
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        p.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    stages = {"prune": prune_all, "train": train_all, "eval": eval_all, "export": export_all, "bench": bench_all, "table": write_table}
    for stage in args.stages.split(","):
        if stage not in stages:
            p.error(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
        stages[stage](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
