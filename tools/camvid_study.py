#!/usr/bin/env python
"""CamVid reference study: CGNet teacher → students trained without KD and with KD methods.

Every run shares one schedule, seed and resolution; only the loss differs. Runs are
resumable (a checkpoint and train state per epoch); finished runs are skipped, so the command
can be repeated after an interruption. Results go to OUT/summary.json and OUT/study.log.

    .venv/bin/python tools/camvid_study.py --out ~/edgekd-camvid --jobs 2

runs the whole study (3 students × 4 methods, 10 epochs; about 2 h on a 2-core CPU, see
docs/camvid_study.md); ``--students``, ``--methods``, ``--epochs`` change it.

Stages (``--stages``, all by default, each skips what is already done):

``train``   every student × method into OUT/checkpoints (and the teacher-cache speed-up once);
``export``  every checkpoint to ONNX Runtime and OpenVINO FP32/INT8 and Core ML FP16 with parity
            (``edgekd export``), into OUT/artifacts;
``bench``   every artifact on ``host`` with accuracy on CamVid val (``edgekd bench``), rows into
            ``--results`` (resumed when interrupted);
``table``   OUT/study.md: mIoU per student × method, Δ from KD, INT8 drop, latency, FPS,
            end-to-end ms, peak memory per student × backend, and the pick for ``host``.

``--jobs N`` splits the training over N one-thread processes (``--only STUDENT:METHOD,...``
each); every process merges its runs into summary.json by (student, method).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))

from edgekd.checkpoint import read_meta, sha256_file  # noqa: E402
from edgekd.cli._common import add_renamed_argument  # noqa: E402
from edgekd.input_sizes import parse_hw as parse_size  # noqa: E402
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
        eval_size=args.eval_input_size, seed=args.seed, workers=0, device="cpu",
    )


def is_trained(args, ckpt: Path, method: str) -> bool:
    """All epochs done and, for KD runs, the KD metrics written: distill adds those in a second
    save after the last epoch, so a checkpoint with every epoch but no metrics is still in progress."""
    if not ckpt.is_file():
        return False
    meta = read_meta(ckpt)
    return meta.trained_with.get("epochs_completed") == args.epochs and (method == "baseline" or "kd" in meta.metrics)


def run_one(args, student: str, method: str) -> dict:
    ckpt = args.out / "checkpoints" / f"{student}-{method}.safetensors"
    if is_trained(args, ckpt, method):
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


def write_summary(args, rows: list[dict], speedup: dict | None = None) -> None:
    """Merge this process's runs into OUT/summary.json (another process may own other runs)."""
    path = args.out / "summary.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    merged = {(r["student"], r["method"]): r for r in previous.get("runs", [])}
    merged.update({(r["student"], r["method"]): r for r in rows})
    path.write_text(json.dumps({
        "config": {k: str(v) for k, v in vars(args).items()}, "runs": list(merged.values()),
        "teacher_cache_speedup": speedup or previous.get("teacher_cache_speedup"),
    }, indent=2))


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


EXPORT_TARGETS = "onnxruntime:fp32,onnxruntime:int8,openvino:fp32,openvino:int8,coreml:fp16"
STAGES = ("train", "export", "bench", "table")


def edgekd_cli(*argv: str) -> None:
    """Run one ``edgekd`` command in a child process: the same command a user would type."""
    print("$ edgekd " + " ".join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "edgekd", *argv], check=True)


def study_runs(args) -> list[tuple[str, str]]:
    if args.only:
        return [tuple(run.split(":", 1)) for run in args.only.split(",")]
    return [(s, m) for s in args.students.split(",") for m in args.methods.split(",")]


def train_in_parallel(args) -> None:
    """Split the runs over ``--jobs`` child processes of this script, one torch thread each.

    PyTorch's eager CPU kernels scale poorly past one thread on a small machine, so two
    1-thread trainers finish a study about twice as fast as one 2-thread trainer.
    """
    runs = study_runs(args)
    shares = [runs[i::args.jobs] for i in range(args.jobs)]
    common = ["--out", str(args.out), "--camvid", str(args.camvid), "--teacher", str(args.teacher), "--teacher-arch",
              args.teacher_arch, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
              "--crop", "x".join(map(str, args.crop)), "--scale", *map(str, args.scale),
              "--eval-input-size", "x".join(map(str, args.eval_input_size)), "--seed", str(args.seed), "--threads", "1",
              "--stages", "train", "--cache-speedup-steps", "0"]
    children = []
    for i, share in enumerate(s for s in shares if s):
        only = ",".join(f"{s}:{m}" for s, m in share)
        log(args.out, f"job {i}: {only}")
        with open(args.out / f"train_job{i}.log", "a") as out:
            children.append(subprocess.Popen([sys.executable, __file__, *common, "--only", only], stdout=out, stderr=subprocess.STDOUT))
    failed = [i for i, child in enumerate(children) if child.wait() != 0]
    if failed:
        raise SystemExit(f"training job(s) {failed} failed; see {args.out}/train_job<N>.log, then rerun (finished runs are kept)")


def train_all(args) -> None:
    if args.jobs > 1 and not args.only:
        train_in_parallel(args)
    rows = []
    for student, method in study_runs(args):
        row = run_one(args, student, method)
        row["train_seconds"] = train_seconds(Path(row["checkpoint"]))
        rows.append(row)
        write_summary(args, rows)
    summary = args.out / "summary.json"
    measured = summary.is_file() and json.loads(summary.read_text()).get("teacher_cache_speedup")
    if args.cache_speedup_steps and not measured and any(m != "baseline" for _, m in study_runs(args)):
        speedup = measure_cache_speedup(args, args.students.split(",")[0], args.cache_speedup_steps)
        log(args.out, f"teacher cache: {speedup}")
        write_summary(args, rows, speedup)
    log(args.out, "trained: " + "; ".join(f"{r['student']}/{r['method']} mIoU {100 * r['val_miou']:.2f} %" for r in rows))


def _exported_from(folder: Path, ckpt_sha256: str | None) -> bool:
    """The artifact exists and was made from this exact checkpoint file (its sha256 is in the manifest)."""
    manifest = folder / "manifest.json"
    return manifest.is_file() and json.loads(manifest.read_text())["source"]["sha256"] == ckpt_sha256


def export_all(args) -> None:
    """Export every trained checkpoint; one whose artifact folders all exist is skipped."""
    folders = [t.replace(":", "-") for t in args.export.split(",")]
    for student, method in study_runs(args):
        ckpt = args.out / "checkpoints" / f"{student}-{method}.safetensors"
        root = args.out / "artifacts" / ckpt.stem
        ckpt_sha256 = sha256_file(ckpt) if ckpt.is_file() else None
        if all(_exported_from(root / f, ckpt_sha256) for f in folders):
            log(args.out, f"skip export of {ckpt.stem}: its artifacts exist")
            continue
        if not is_trained(args, ckpt, method):
            log(args.out, f"skip export of {ckpt.stem}: not fully trained yet (run the train stage)")
            continue
        t0 = time.perf_counter()
        edgekd_cli("export", str(ckpt), "--backend", args.export, "--calib", str(args.camvid), "--calib-images", "100",
                   "--data", str(args.camvid), "--parity-images", "8", "--out", str(args.out / "artifacts"), "--force")
        log(args.out, f"exported {ckpt.stem} in {time.perf_counter() - t0:.0f} s")


def bench_all(args) -> None:
    """Bench every artifact on ``host`` with CamVid val accuracy under one run id (resumed if it exists)."""
    folders = [str(args.out / "artifacts" / f"{s}-{m}") for s, m in study_runs(args)]
    run_file = args.results / "host" / f"{args.run_id}.jsonl"
    run = ["--resume", args.run_id] if run_file.is_file() else ["--run-id", args.run_id]
    t0 = time.perf_counter()
    edgekd_cli("bench", "--device", "host", *folders, "--data", str(args.camvid), "--duration", str(args.duration),
               "--warmup-max", "3", "--e2e", "2", "--throughput", "2", "--out", str(args.results), *run)
    log(args.out, f"bench done in {time.perf_counter() - t0:.0f} s: {run_file}")


def _fmt(value, digits: int = 1, signed: bool = False) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _bench_miou(df, candidate: str, backend: str, precision: str) -> float | None:
    """mIoU (fraction) of one bench cell on the whole val split, or None when it did not run."""
    row = df[(df["candidate"] == candidate) & (df["backend"] == backend) & (df["precision"] == precision)]
    return None if row.empty or row.iloc[0]["status"] != "ok" else float(row.iloc[0]["miou"])


def accuracy_table(args, df) -> list[str]:
    """Val mIoU per student × method, Δ from KD, KD metrics, and accuracy through each runtime.

    INT8's drop is against FP32 *through the same runtime* (both on all val images), so it is the
    cost of quantisation alone; the FP32 columns next to PyTorch's show the conversion itself is lossless.
    """
    summary = {(r["student"], r["method"]): r for r in json.loads((args.out / "summary.json").read_text())["runs"]}
    lines = ["| student | method | mIoU % PyTorch FP32 | Δ vs no KD | boundary F % | KL(t‖s) | corr(t, s) "
             "| ORT FP32 | ORT INT8 (drop) | OpenVINO FP32 | OpenVINO INT8 (drop) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for student, method in study_runs(args):
        run = summary.get((student, method))
        if run is None:
            continue
        base = summary.get((student, "baseline"))
        miou = 100 * run["val_miou"]
        delta = _fmt(miou - 100 * base["val_miou"], signed=True) if base and method != "baseline" else "—"
        runtimes = []
        for backend in ("onnxruntime", "openvino"):
            fp32, int8 = (_bench_miou(df, f"{student}-{method}", backend, p) for p in ("fp32", "int8"))
            drop = f" ({_fmt(100 * (int8 - fp32), 2, signed=True)})" if fp32 is not None and int8 is not None else ""
            runtimes += [_fmt(None if fp32 is None else 100 * fp32), _fmt(None if int8 is None else 100 * int8) + drop]
        kd = run.get("kd") or {}
        lines.append(f"| {student} | {method} | {_fmt(miou)} | {delta} | {_fmt(100 * run['val_boundary_f'])} "
                     f"| {_fmt(kd.get('teacher_student_kl'), 3)} | {_fmt(kd.get('probability_correlation'), 3)} | "
                     + " | ".join(runtimes) + " |")
    return lines


def pivot_table(args) -> list[str]:
    """The README's one-look table: val mIoU per student (rows) and method (columns), Δ in brackets."""
    summary = {(r["student"], r["method"]): r for r in json.loads((args.out / "summary.json").read_text())["runs"]}
    methods = args.methods.split(",")
    lines = ["| student | params | " + " | ".join(methods) + " |", "|---|---:|" + "---:|" * len(methods)]
    for student in args.students.split(","):
        base = summary.get((student, "baseline"))
        cells = []
        for method in methods:
            run = summary.get((student, method))
            if run is None:
                cells.append("—")
                continue
            text = _fmt(100 * run["val_miou"])
            if base and method != "baseline":
                text += f" ({_fmt(100 * (run['val_miou'] - base['val_miou']), signed=True)})"
            cells.append(text)
        params = next((summary[(student, m)]["params"] for m in methods if (student, m) in summary), None)
        lines.append(f"| {student} | {params / 1e6:.2f} M | " + " | ".join(cells) + " |" if params else
                     f"| {student} | — | " + " | ".join(cells) + " |")
    return lines


def per_class_table(args) -> list[str]:
    """Val IoU per class (PyTorch FP32, from each checkpoint): where KD helps, and what no run learns."""
    metrics = {run: read_meta(args.out / "checkpoints" / f"{run[0]}-{run[1]}.safetensors").metrics
               for run in study_runs(args) if (args.out / "checkpoints" / f"{run[0]}-{run[1]}.safetensors").is_file()}
    classes = next((list(m["per_class_iou"]) for m in metrics.values() if m.get("per_class_iou")), [])
    lines = ["| candidate | " + " | ".join(classes) + " |", "|---|" + "---:|" * len(classes)]
    for (student, method), m in metrics.items():
        ious = m.get("per_class_iou") or {}
        lines.append(f"| {student}-{method} | " + " | ".join(_fmt(100 * ious[c], 0) if c in ious else "—" for c in classes) + " |")
    return lines


def parity_table(args) -> list[str]:
    """Export parity per artifact (8 val images vs PyTorch FP32): argmax agreement and max |Δlogit|."""
    targets = [t.replace(":", "-") for t in args.export.split(",")]
    lines = ["| candidate | " + " | ".join(targets) + " |", "|---|" + "---:|" * len(targets)]
    for student, method in study_runs(args):
        cells = []
        for target in targets:
            manifest = args.out / "artifacts" / f"{student}-{method}" / target / "manifest.json"
            found = json.loads(manifest.read_text()) if manifest.is_file() else {}
            parity = found.get("parity") or {}
            if found and parity.get("status") == "unavailable":
                cells.append(f"converted, {found['size_bytes'] / 1e6:.2f} MB; parity needs macOS" if found["backend"] == "coreml"
                             else f"converted; parity {parity['status']}")
            elif parity.get("status") == "ok":
                flag = " ⚠" if parity["argmax_agreement"] < parity.get("threshold", 0.98) else ""
                cells.append(f"{100 * parity['argmax_agreement']:.2f}% / {parity['max_abs_logit_diff']:.2g}{flag}")
            else:
                cells.append(parity.get("status") or "not exported")
        lines.append(f"| {student}-{method} | " + " | ".join(cells) + " |")
    return lines


def speed_table(args, df) -> list[str]:
    """Per student × backend: KD does not change the network, so the figures are the median over its methods' cells."""
    lines = ["| student | backend | precision used | cells | p50 ms (median, range) | p99 ms | FPS | e2e ms | peak MB | model MB |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for student in args.students.split(","):
        mine = df[df["candidate"].str.startswith(f"{student}-")]
        for (backend, precision), group in mine.groupby(["backend", "precision"], sort=True):
            ok = group[group["status"] == "ok"]
            if ok.empty:
                reason = str(group.iloc[0]["reason"]).split(";")[0][:90]
                lines.append(f"| {student} | {backend} {precision} | — | {len(group)} | {group.iloc[0]['status']}: {reason} "
                             "| | | | | |")
                continue
            med = {k: statistics.median(ok[k].dropna()) if ok[k].notna().any() else None
                   for k in ("latency_p50_ms", "latency_p99_ms", "fps", "e2e_ms", "peak_mb", "model_mb")}
            used = ", ".join(sorted(set(ok["precision_used"].dropna())))
            p50 = f"{_fmt(med['latency_p50_ms'])} ({_fmt(ok['latency_p50_ms'].min())}–{_fmt(ok['latency_p50_ms'].max())})"
            lines.append(f"| {student} | {backend} {precision} | {used} | {len(ok)} | {p50} | {_fmt(med['latency_p99_ms'])} "
                         f"| {_fmt(med['fps'])} | {_fmt(med['e2e_ms'])} | {_fmt(med['peak_mb'], 0)} | {_fmt(med['model_mb'], 2)} |")
    return lines


def write_table(args) -> None:
    """OUT/study.md from summary.json and the bench rows: the tables the README links to, and the pick."""
    from edgekd.compare import compare_results, pick_best

    df = compare_results([str(args.results / "host" / f"{args.run_id}.jsonl")])
    pick = pick_best(df, "host")
    text = "\n".join([
        "### Val mIoU % per student and method (Δ vs no KD, points)", "", *pivot_table(args), "",
        "### Accuracy (CamVid val, 101 images at 180×240, labels native)", "", *accuracy_table(args, df), "",
        "### Val IoU % per class (PyTorch FP32)", "", *per_class_table(args), "",
        "### Export parity (argmax agreement / max |Δlogit| vs PyTorch FP32 on 8 val images; ⚠ below 98%)", "",
        *parity_table(args), "",
        "### Speed and memory on host (edgekd bench --device host)", "", *speed_table(args, df), "",
        "### Pick for host", "", "```", pick.text(), "```", "",
    ])
    (args.out / "study.md").write_text(text)
    log(args.out, f"tables written to {args.out / 'study.md'}")
    print(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="directory for checkpoints, teacher cache, artifacts, logs, summary")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, in order: {', '.join(STAGES)}")
    p.add_argument("--camvid", type=Path, default=SHARED / "data" / "camvid")
    p.add_argument("--teacher", type=Path, default=SHARED / "models" / "cgnet_m3n21_camvid_trainval.pth")
    p.add_argument("--teacher-arch", default="cgnet_m3n21")
    p.add_argument("--students", default="lraspp_mobilenetv3_small,fast_scnn,unet_tiny")
    p.add_argument("--methods", default="baseline,kd-t1,cwd,dist")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--crop", type=parse_size, default=(180, 240))
    p.add_argument("--scale", type=float, nargs=2, default=(0.4, 0.7), help="random rescale of the 360×480 image before cropping")
    add_renamed_argument(p, "--eval-input-size", "--eval-size", type=parse_size, default=(180, 240), help="val images are resized to this (labels stay native)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads for training (1 lets two processes share 2 cores)")
    p.add_argument("--jobs", type=int, default=1, help="train in N parallel 1-thread processes (2 suits 2 cores)")
    p.add_argument("--only", default=None, help="train exactly these STUDENT:METHOD runs (used by --jobs)")
    p.add_argument("--cache-speedup-steps", type=int, default=10, help="steps timed with and without the teacher cache (0: skip)")
    p.add_argument("--export", default=EXPORT_TARGETS, help=f"backend:precision pairs to export (default {EXPORT_TARGETS})")
    p.add_argument("--results", type=Path, default=ROOT / "bench_results", help="bench results folder (default bench_results/)")
    p.add_argument("--run-id", default="camvid-study", help="bench run id: rows go to RESULTS/host/RUN_ID.jsonl")
    add_renamed_argument(p, "--duration", "--bench-seconds", type=float, default=5.0, help="timed seconds per bench cell (default 5)")
    args = p.parse_args(argv)
    stages = args.stages.split(",")
    if any(s not in STAGES for s in stages):
        p.error(f"--stages {args.stages}: choose from {', '.join(STAGES)}")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (args.camvid, args.teacher):
        if not path.exists():
            p.error(f"{path} does not exist (the study needs CamVid and the CGNet teacher; see ../shared/data/README.md)")
    if args.only and any(":" not in run for run in args.only.split(",")):
        p.error(f"--only {args.only}: give STUDENT:METHOD pairs, e.g. fast_scnn:dist,unet_tiny:baseline")
    if args.jobs < 1:
        p.error(f"--jobs {args.jobs}: give 1 or more")
    unknown = [m for _, m in study_runs(args) if m not in METHODS]
    if unknown:
        p.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    log(args.out, f"study: {vars(args)}")
    t0 = time.perf_counter()
    for stage, action in (("train", train_all), ("export", export_all), ("bench", bench_all), ("table", write_table)):
        if stage in stages:
            action(args)
    log(args.out, f"stages {args.stages} took {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
