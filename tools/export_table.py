#!/usr/bin/env python
"""Export every zoo student and tabulate parity, artifact size and CPU latency (docs/export.md).

    .venv/bin/python tools/export_table.py --calib ../shared/data/camvid --out /tmp/export-table \\
        --threads 2 --write-doc docs/export.md

Students come from ``--checkpoints DIR/<name>.safetensors`` when present, else they are
randomly initialised (seed 0) and the table says so. Latency: batch 1 at the export size, the
same thread count for every runtime, warm-up until stable, then interleaved rounds of timed
loops (``edgekd.core.timing``); the figure is the median over all rounds. The OpenVINO
precision actually used is read back from the compiled model, never assumed.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

ARTIFACTS = ("torch:fp32,onnxruntime:fp32,onnxruntime:int8,openvino:fp32,openvino:fp16,openvino:int8,"
             "coreml:fp16,tensorrt:fp16,tensorrt:int8")
RUNS = (  # (column, artifact folder, runtime options besides threads)
    ("torch eager", "torch-fp32", {}),
    ("ORT FP32", "onnxruntime-fp32", {}),
    ("ORT INT8", "onnxruntime-int8", {}),
    ("OV FP32 (f32 hint)", "openvino-fp32", {"precision_hint": "f32"}),
    ("OV FP32 (device default)", "openvino-fp32", {}),
    ("OV INT8 (device default)", "openvino-int8", {}),
)
MARK_START, MARK_END = "<!-- export-table:start -->", "<!-- export-table:end -->"


def student_checkpoint(name: str, checkpoints: Path | None, out: Path, size: tuple[int, int]) -> tuple[Path, str]:
    """A trained checkpoint when one is given, else a random-init one (CamVid classes) made here."""
    import torch

    from edgekd.checkpoint import CheckpointMeta, save_checkpoint
    from edgekd.data.info import CAMVID_CLASSES, CAMVID_IGNORE_INDEX
    from edgekd.models import create_model

    if checkpoints and (checkpoints / f"{name}.safetensors").is_file():
        return checkpoints / f"{name}.safetensors", "trained"
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(CAMVID_CLASSES)).eval()
    norm = model.normalization
    meta = CheckpointMeta(arch=name, num_classes=len(CAMVID_CLASSES), class_names=list(CAMVID_CLASSES),
                          ignore_index=CAMVID_IGNORE_INDEX, input_size=list(size), mean=list(norm.mean), std=list(norm.std),
                          channel_order=norm.channel_order, trained_with={"method": "random-init", "seed": 0})
    return save_checkpoint(out / "checkpoints" / f"{name}.safetensors", model, meta), "random-init"


def time_runs(folders: dict[str, Path], x: np.ndarray, threads: int, rounds: int, seconds: float) -> dict[str, dict]:
    """Median latency per run, interleaved across ``rounds`` so machine drift hits all runs alike."""
    from edgekd.core.timing import LoopPolicy, WarmupPolicy, summarize, timed_loop, warm_up
    from edgekd.export import load_artifact

    sessions, results = {}, {}
    for column, folder, options in RUNS:
        session = load_artifact(folders[folder], threads=threads, **options)
        warm = warm_up(lambda s=session: s.run(x), session.sync, WarmupPolicy(max_seconds=20.0))
        sessions[column] = session
        results[column] = {"samples": [], "ran_as": session.describe(), "warmup_stable": warm.stable}
    policy = LoopPolicy(duration_s=seconds, min_iters=10, hard_limit_s=max(60.0, seconds))
    for _ in range(rounds):
        for column, session in sessions.items():
            samples, _ = timed_loop(lambda s=session: s.run(x), session.sync, policy)
            results[column]["samples"].extend(samples.tolist())
    for column, result in results.items():
        stats = summarize(result.pop("samples"))
        result.update(p50_ms=stats.p50, p90_ms=stats.p90, n=stats.n, cv=stats.cv)
    return results


def one_student(name: str, args: argparse.Namespace, size: tuple[int, int], frame, given: Path | None = None) -> dict:
    from edgekd.errors import EdgekdError
    from edgekd.export import export_checkpoint, read_manifest

    ckpt, origin = (given, f"trained ({given.name})") if given else student_checkpoint(name, args.checkpoints, args.out, size)
    expected = [f"{pair.replace(':', '-')}" for pair in ARTIFACTS.split(",")]
    root = args.out / "artifacts" / ckpt.stem
    start = time.perf_counter_ns()
    missing = [pair for pair, folder in zip(ARTIFACTS.split(","), expected)
               if not (args.reuse and (root / folder / "manifest.json").is_file())]
    notes = []
    common = dict(precisions="fp32", out_dir=args.out / "artifacts", calib_dir=args.calib, calib_size=args.calib_images,
                  data_dir=args.calib, parity_images=args.parity_images, input_size=size, force=True,
                  log=lambda m: print(f"  [{name}] {m}", flush=True))
    others = [pair for pair in missing if pair != "onnxruntime:int8"]
    if others:  # --reuse re-exports only the artifacts that are not there
        export_checkpoint(ckpt, backends=",".join(others), **common)
    if "onnxruntime:int8" in missing:
        try:
            export_checkpoint(ckpt, backends="onnxruntime:int8", calib_method=args.calib_method, **common)
        except EdgekdError as err:  # recorded in the table, never hidden
            print(f"  [{name}] ORT INT8 with {args.calib_method} failed ({err}); retrying with minmax", flush=True)
            notes.append(f"ORT INT8 calibrated with minmax: {args.calib_method} failed ({str(err).split(';')[0]})")
            export_checkpoint(ckpt, backends="onnxruntime:int8", calib_method="minmax", **common)
    folders = {folder: root / folder for folder in expected}
    export_s = (time.perf_counter_ns() - start) / 1e9
    manifests = {k: read_manifest(v) for k, v in folders.items()}
    row = {"student": name, "origin": origin, "params": manifests["torch-fp32"]["params"], "export_seconds": export_s,
           "manifests": manifests, "latency": None, "notes": notes}
    if args.latency:
        x = frame.normalized(manifests["torch-fp32"]["normalization"])  # the checkpoint's own pre-processing
        row["loadavg_before_timing"] = os.getloadavg()
        row["latency"] = time_runs(folders, x, args.threads, args.rounds, args.seconds)
        row["loadavg_after_timing"] = os.getloadavg()
    return row


def _mb(m: dict) -> str:
    return f"{m['size_bytes'] / 1e6:.2f}"


def _parity_cell(p: dict) -> str:
    if p.get("status") != "ok":
        return p.get("status", "?")
    delta = "n/a" if p.get("miou_delta") is None else f"{p['miou_delta'] * 100:+.2f}"
    flag = " ⚠" if p.get("warning") else ""
    method = f" ({p['method']})" if p.get("method") else ""
    return f"{p['argmax_agreement'] * 100:.2f}% / {p['max_abs_logit_diff']:.1e} / {delta}{flag}{method}"


def markdown(rows: list[dict], args: argparse.Namespace, size: tuple[int, int], command: str) -> str:
    h, w = size
    lines = [f"Students at {w}×{h} (W×H), CamVid classes; `.venv/bin/python {command}`.", ""]
    lines += ["**Artifact size (MB)**", "",
              "| student | origin | params | torch | ORT FP32 | ORT INT8 | OV FP32 | OV FP16 | OV INT8 | Core ML FP16 (spec load) | TRT FP16 / INT8 recipe |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["manifests"]
        spec = m["coreml-fp16"]["coreml"]["spec_check"]
        lines.append(f"| {r['student']} | {r['origin']} | {r['params'] / 1e6:.2f} M | " + " | ".join(_mb(m[k]) for k in (
            "torch-fp32", "onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-fp16", "openvino-int8"))
            + f" | {_mb(m['coreml-fp16'])} ({spec['model_type']}, {spec['operations']} ops) | {_mb(m['tensorrt-fp16'])} / "
            f"{_mb(m['tensorrt-int8'])} |")
    lines += ["", f"**Parity vs PyTorch FP32** on {args.parity_images} CamVid val images: argmax agreement / max |Δlogit| / "
              "mIoU Δ (points); ⚠ = agreement below 98%", "",
              "| student | ORT FP32 | ORT INT8 | OV FP32 (f32) | OV FP32 (default) | OV FP16 (f32) | OV INT8 (f32) | OV INT8 (default) | Core ML | TensorRT |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["manifests"]
        ov = lambda k, v: m[k]["parity"].get("variants", {}).get(v, {"status": "n/a"})  # noqa: E731
        ort_int8 = dict(m["onnxruntime-int8"]["parity"], method=m["onnxruntime-int8"]["calibration"]["method"])
        cells = [m["onnxruntime-fp32"]["parity"], ort_int8, m["openvino-fp32"]["parity"],
                 ov("openvino-fp32", "device default"), m["openvino-fp16"]["parity"], m["openvino-int8"]["parity"],
                 ov("openvino-int8", "device default"), m["coreml-fp16"]["parity"], m["tensorrt-int8"]["parity"]]
        lines.append(f"| {r['student']} | " + " | ".join(_parity_cell(c) for c in cells) + " |")
    notes = [f"- {r['student']}: {n}" for r in rows for n in r.get("notes", [])]
    lines += ["", "ORT INT8: calibration method in brackets (percentile by default; minmax where percentile cannot "
              "histogram the near-constant activations of an untrained model); OpenVINO INT8: nncf.quantize; "
              "Core ML and TensorRT cannot run here (macOS / NVIDIA GPU)."] + notes
    lines += ["", f"**Latency (ms, median, batch 1, {args.threads} threads)**; the precision each runtime really used in brackets", "",
              "| student | " + " | ".join(c for c, _, _ in RUNS) + " | load avg (1 min) |", "|---|" + "---|" * (len(RUNS) + 1)]
    for r in rows:
        if r["latency"] is None:
            lines.append(f"| {r['student']} | " + " | ".join("not measured" for _ in RUNS) + " | |")
            continue
        cells = [f"{r['latency'][c]['p50_ms']:.1f} ({r['latency'][c]['ran_as'].get('precision', '?')})" for c, _, _ in RUNS]
        lines.append(f"| {r['student']} | " + " | ".join(cells) + f" | {r['loadavg_before_timing'][0]:.1f}–{r['loadavg_after_timing'][0]:.1f} |")
    return "\n".join(lines) + "\n"


def _command() -> str:
    """This run's command line without the flags that do not change the figures (--reuse, --write-doc)."""
    args, out, skip = sys.argv[:], [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--write-doc":
            skip = True
        elif arg != "--reuse":
            out.append(f"'{arg}'" if " " in arg else arg)
    return " ".join(out)


def write_doc(doc: Path, table: str) -> None:
    text = doc.read_text()
    if MARK_START not in text or MARK_END not in text:
        raise SystemExit(f"{doc} lacks the markers {MARK_START} / {MARK_END}")
    pattern = re.compile(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), re.S)
    doc.write_text(pattern.sub(lambda _: f"{MARK_START}\n{table}{MARK_END}", text))


def main(argv: list[str] | None = None) -> int:
    from edgekd.cli._common import add_renamed_argument

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calib", type=Path, help="dataset folder (train split calibrates, val split for parity)")
    p.add_argument("--out", type=Path, help="work folder: checkpoints/, artifacts/, export_table.json")
    p.add_argument("--checkpoints", type=Path, default=None, help="folder of trained <student>.safetensors (else random init)")
    p.add_argument("--students", default=None, help="comma-separated (default: every zoo student); 'none' for only --extra")
    p.add_argument("--extra", action="append", default=[], metavar="LABEL=CKPT", help="an extra row from a trained checkpoint")
    p.add_argument("--input-size", default="360x480")
    p.add_argument("--threads", type=int, default=2)
    add_renamed_argument(p, "--calib-images", "--calib-size", type=int, default=100)
    p.add_argument("--calib-method", default="percentile", help="ONNX Runtime INT8 calibration (minmax when it fails, noted)")
    p.add_argument("--parity-images", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per run per round")
    p.add_argument("--no-latency", dest="latency", action="store_false", help="export and parity only")
    p.add_argument("--reuse", action="store_true", help="reuse complete artifact folders from an earlier run of this tool")
    p.add_argument("--write-doc", type=Path, default=None, help="replace the marked table section of this markdown file")
    p.add_argument("--render", type=Path, default=None, help="re-render the tables from an earlier run's export_table.json")
    args = p.parse_args(argv)
    if args.render:
        doc = json.loads(args.render.read_text())
        table = markdown(doc["rows"], argparse.Namespace(**doc["args"]), tuple(doc["size"]), doc["command"])
        print(table)
        if args.write_doc:
            write_doc(args.write_doc, table)
        return 0
    if args.calib is None or args.out is None:
        p.error("--calib and --out are required (unless --render)")

    import torch

    from edgekd.export import parse_input_size
    from edgekd.export.inputs import load_sample
    from edgekd.models import list_models

    torch.set_num_threads(args.threads)
    size = parse_input_size(args.input_size)
    names = [] if args.students == "none" else args.students.split(",") if args.students else [e.name for e in list_models("student")]
    frame = load_sample(args.calib, "val", 1, size, seed=1)  # one real frame, the same for every runtime
    rows = []
    for name in names:
        print(f"== {name}", flush=True)
        rows.append(one_student(name, args, size, frame))
    for extra in args.extra:
        label, _, path = extra.partition("=")
        print(f"== {label}", flush=True)
        rows.append(one_student(label, args, size, frame, given=Path(path)))
    command = _command()
    table = markdown(rows, args, size, command)
    host = {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(), "cores": os.cpu_count()}
    saved = {"threads": args.threads, "parity_images": args.parity_images}
    (args.out / "export_table.json").write_text(json.dumps(
        {"host": host, "command": command, "size": list(size), "args": saved, "rows": rows}, indent=1, default=str))
    print(table)
    if args.write_doc:
        write_doc(args.write_doc, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
