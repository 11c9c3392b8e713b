"""Run every bad input and fault of issue 16 against the installed ``edgekd`` CLI and print the table.

    nice -n 19 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python tools/hardening_table.py [--out docs/hardening.md]

Each case is one command on tiny synthetic inputs (a 64x96 synthetic dataset, untrained
``unet_tiny`` checkpoints made here with the library) in a fresh temporary folder; the table gives
the case, the command (``$W`` is that folder), the exit code and the first line the command printed
(stderr first, else stdout). Cases needing more than a command (a kill -9 in the middle, a file
size limit standing in for a full disk) are small shell sequences, shown as they run. Cases that
need ../shared (the ESPNet CamVid checkpoint) are left out when it is absent. The 28 cases the
issue found handled and its 17 failures are marked ``kept`` / ``fixed``.
"""
from __future__ import annotations

import argparse
import os
import pickle
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EDGEKD = shutil.which("edgekd") or str(Path(sys.executable).with_name("edgekd"))


@dataclass
class Case:
    name: str
    kind: str  # "kept" (handled before issue 16) | "fixed" (one of its 17)
    shell: str  # run with bash in the work folder; $W is the work folder, $E the edgekd command
    expect: str = "refused"  # "refused" (exit != 0), "ok" (exit 0), or "failed" (exit 1: a result not usable)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def make_inputs(w: Path) -> None:
    """The dataset and checkpoints every case uses (made with the library, quietly)."""
    import torch
    import yaml

    from edgekd.checkpoint import CheckpointMeta, save_checkpoint
    from edgekd.data import generate_synthetic_dataset
    from edgekd.models import create_model

    data = generate_synthetic_dataset(w / "data", num_train=4, num_val=2, size=(64, 96), seed=0)

    def ckpt(name: str, classes: int = 7, nan: bool = False) -> Path:
        torch.manual_seed(0)
        model = create_model("unet_tiny", num_classes=classes)
        if nan:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        meta = CheckpointMeta(arch="unet_tiny", num_classes=classes, class_names=[f"c{i}" for i in range(classes)],
                              ignore_index=255, input_size=[64, 96], mean=[0.0] * 3, std=[255.0] * 3,
                              trained_with={"method": "hardening-table"})
        return save_checkpoint(w / name, model, meta)

    good = ckpt("good.safetensors")
    ckpt("five.safetensors", 5)
    ckpt("nan.safetensors", nan=True)
    raw = good.read_bytes()
    (w / "truncated.safetensors").write_bytes(raw[: len(raw) // 2])
    (w / "empty.safetensors").write_bytes(b"")
    with open(w / "evil.pth", "wb") as f:
        pickle.dump({"model": _Exploit()}, f)
    shutil.copy(w / "evil.pth", w / "renamed.safetensors")
    shutil.copy(good, w / "resume.safetensors")
    shutil.copy(w / "evil.pth", w / "resume.train_state.pt")
    # a dataset with one image that is not an image
    bad = w / "baddata"
    shutil.copytree(data, bad)
    first = sorted((bad / "images").glob("train_*.png"))[0]
    first.write_bytes(b"not a png")
    # profiles: malformed YAML, unknown key, ProxyCommand, wrong type
    host = yaml.safe_load((REPO / "device_profiles" / "host.yaml").read_text())
    (w / "broken.yaml").write_text("name: broken\nreal_time:\n  target_fps: [30\n  latency_budget_ms: 33\n")
    for name, change in {
        "unknownkey": {"colour": "red"},
        "proxy": {"connection": {"type": "ssh", "host": "user@127.0.0.1", "ssh_options": ["-oProxyCommand=touch PWNED"]}},
        "wrongtype": {"real_time": {**host["real_time"], "target_fps": "fast"}},
        "closedport": {"connection": {"type": "ssh", "host": "user@127.0.0.1", "port": 9}},
    }.items():
        (w / f"{name}.yaml").write_text(yaml.safe_dump({**host, **change, "name": name}))
    # a results file with a cell that could not run for want of a package
    from edgekd.results import ResultStore, make_record

    ResultStore(w / "r8" / "host" / "r.jsonl").append(make_record(
        run_id="r", timestamp="2026-01-01T00:00:00+00:00", cell_key="k", device={"name": "host"},
        candidate={"label": "good/openvino-fp32", "arch": "unet_tiny"}, backend={"name": "openvino"}, precision_requested="fp32",
        status="unavailable", error="OpenVINO is not installed; pip install 'edgekd[openvino]'"))


def then_check(command: str, check: str) -> str:
    """``command``'s exit code, once ``check`` holds (else 99: the case's side condition failed)."""
    return f"{command}; rc=$?; {check} || exit 99; exit $rc"


NO_PWNED = "test ! -e PWNED"

CASES = [
    # --- checkpoints that are not what they claim (kept + fixed in the landed part of issue 16) ---
    Case("code-running pickle, eval", "kept", then_check("$E eval evil.pth --arch unet_tiny --data data", NO_PWNED)),
    Case("code-running pickle, export", "kept", then_check("$E export evil.pth --arch unet_tiny --backend torch --precision fp32 --out a0", NO_PWNED)),
    Case("code-running pickle, doctor", "kept", then_check("$E doctor evil.pth --arch unet_tiny", NO_PWNED)),
    Case("code-running pickle, distill --teacher", "kept",
         then_check("$E distill --teacher evil.pth --teacher-arch unet_tiny --student unet_tiny --data data --out s.safetensors --epochs 1", NO_PWNED)),
    Case("torch's 'weights_only=False' advice never repeated", "fixed",
         "out=$($E eval evil.pth --arch unet_tiny --data data 2>&1); rc=$?; echo \"$out\" >&2; "
         "echo \"$out\" | grep -q 'weights_only\\|Re-running\\|likely succeed' && exit 99; exit $rc"),
    Case("truncated safetensors, eval", "fixed", "$E eval truncated.safetensors --data data"),
    Case("zero-byte checkpoint, export", "fixed", "$E export empty.safetensors --backend torch --precision fp32 --out a0"),
    Case("pickle renamed .safetensors, doctor", "fixed", "$E doctor renamed.safetensors"),
    Case("truncated teacher, distill", "fixed", "$E distill --teacher truncated.safetensors --student unet_tiny --data data --out s.safetensors"),
    Case("code-running train_state, train --resume", "fixed",
         then_check("$E train --arch unet_tiny --data data --out resume.safetensors --resume --epochs 1 --crop-size 48x64", NO_PWNED)),
    # --- class count ---
    Case("class count differs, eval", "fixed", "$E eval five.safetensors --data data"),
    Case("class count differs, export parity", "fixed",
         then_check("$E export five.safetensors --backend torch --precision fp32 --data data --parity-images 2 --out a1", "test ! -e a1")),
    Case("class count differs, bench accuracy", "fixed",
         "$E export five.safetensors --backend torch --precision fp32 --parity-images 0 --out a2 >/dev/null && "
         "$E bench a2 --device host --data data --out r2"),
    # --- NaN / Inf ---
    Case("NaN weights, export parity (manifest strict JSON)", "fixed",
         "$E export nan.safetensors --backend torch --precision fp32 --data data --parity-images 2 --out a3; rc=$?; "
         "python -c \"import json,sys; json.load(open('a3/nan/torch-fp32/manifest.json'), parse_constant=lambda c: sys.exit('NaN in JSON'))\" "
         "&& exit $rc", "failed"),
    Case("NaN weights, bench cell", "fixed",
         "$E export nan.safetensors --backend torch --precision fp32 --parity-images 0 --out a4 >/dev/null; "
         "$E bench a4 --device host --duration 0.3 --min-iters 3 --warmup-max 0.3 --e2e 0.1 --throughput 0 --data data "
         "--accuracy-images 1 --out r4 >/dev/null; python -c \"import json,glob; r=json.loads(open(glob.glob('r4/host/*.jsonl')[0]).readline()); "
         "print(r['status'], '-', r['error'].splitlines()[0]); raise SystemExit(r['status'] != 'failed')\"", "ok"),
    # --- compare ---
    Case("compare on a row of the wrong shape", "fixed",
         "mkdir -p r5/host && echo '{\"foo\": 1}' > r5/host/x.jsonl && $E compare r5"),
    # --- overwrite refusals ---
    Case("train --out onto an existing checkpoint", "fixed", "$E train --arch unet_tiny --data data --out good.safetensors --epochs 1"),
    Case("export onto an existing artifact", "kept",
         "$E export good.safetensors --backend torch --precision fp32 --parity-images 0 --out a6 >/dev/null && "
         "$E export good.safetensors --backend torch --precision fp32 --parity-images 0 --out a6"),
    Case("doctor --fix onto an existing file", "kept", "$E doctor good.safetensors --fix five.safetensors"),
    Case("data synth into a non-empty folder", "kept", "$E data synth data --num-train 1 --num-val 1"),
    # --- messages ---
    Case("install hint keeps its [extra] (rich markup)", "fixed",
         "$E compare r8 | grep -m1 -o \"unavailable.*pip install 'edgekd\\[openvino\\]'\"", "ok"),
    Case("malformed YAML profile", "fixed", "$E bench a7 --device broken.yaml"),
    Case("profile with an unknown key", "kept", "$E bench a7 --device unknownkey.yaml"),
    Case("profile with a wrong type", "kept", "$E bench a7 --device wrongtype.yaml"),
    Case("unknown device name", "kept", "$E bench a7 --device jetson-orin-nan"),
    Case("unknown backend", "kept", "$E export good.safetensors --backend onnxrt --out a8"),
    Case("INT8 without calibration images", "kept", "$E export good.safetensors --backend onnxruntime --precision int8 --out a8"),
    # --- input size: one rule ---
    Case("export --input-size 63x95 (off the stride grid)", "fixed",
         "$E export good.safetensors --backend torch --precision fp32 --parity-images 0 --input-size 63x95 --out a9 | grep -m1 'not a multiple'", "ok"),
    Case("doctor at 63x95: same verdict as export", "fixed",
         "$E doctor a9/good/torch-fp32 --json | python -c \"import json,sys; f=[x for x in json.load(sys.stdin)['findings'] "
         "if x['code'].startswith('stride')]; print(f[0]['severity'], f[0]['code'], f[0]['what'])\"", "ok"),
    Case("export --input-size refused where the model fails (ESPNet needs /8)", "kept",
         "$E export good.safetensors --arch espnet_p2q8 --backend torch --input-size 63x95 --out a10 2>&1 | tail -1 >&2; exit ${PIPESTATUS[0]}"),
    # --- half-written files after a kill ---
    Case("kill -9 during export, then re-export cleans the stale .tmp", "fixed",
         "($E export good.safetensors --backend onnxruntime,torch --precision fp32 --data data --parity-images 2 --out a11 "
         ">/dev/null 2>&1 & pid=$!; for i in $(seq 600); do ls -a a11/good 2>/dev/null | grep -q '\\.tmp$' && break; sleep 0.1; done; "
         "kill -9 $pid; wait $pid 2>/dev/null); echo \"left: $(ls -a a11/good | grep -c '^\\.')\" >&2; "
         "$E export good.safetensors --backend onnxruntime,torch --precision fp32 --data data --parity-images 2 --out a11 --force >/dev/null; "
         "echo \"after re-export: $(ls -a a11/good | grep -c '^\\.[^.]') hidden temporaries\"", "ok"),
    Case("bench never takes a .tmp folder", "fixed",
         "cp -r a6/good/torch-fp32 a6/good/.torch-fp32.pid1.x.tmp && $E bench a6/good/.torch-fp32.pid1.x.tmp --device host"),
    Case("bench skips an incomplete artifact", "fixed",
         "cp -r a6/good/torch-fp32 a12 && python -c \"import json; p='a12/manifest.json'; m=json.load(open(p)); "
         "m['complete']=False; m['parity']={'status': 'pending'}; json.dump(m, open(p,'w'))\" && $E bench a12 --device host"),
    Case("export with a missing backend package leaves no --out", "fixed",
         "$E export good.safetensors --backend litert --precision fp32 --parity-images 0 --out a13; rc=$?; test ! -e a13 && exit $rc"),
    Case("bench resume after kill -9", "kept",
         "$E export good.safetensors --backend torch,onnxruntime --precision fp32 --parity-images 0 --out a14 >/dev/null; "
         "($E bench a14 --device host --duration 0.5 --min-iters 3 --warmup-max 0.3 --e2e 0.1 --throughput 0 --run-id k --out r14 "
         ">/dev/null 2>&1 & pid=$!; for i in $(seq 900); do test -s r14/host/k.jsonl && break; sleep 0.1; done; kill -9 $pid; wait $pid 2>/dev/null); "
         "$E bench a14 --device host --duration 0.5 --min-iters 3 --warmup-max 0.3 --e2e 0.1 --throughput 0 --resume k --out r14 >/dev/null; "
         "echo \"rows after resume: $(wc -l < r14/host/k.jsonl) (2 cells)\"", "ok"),
    # --- disk full / read-only results ---
    Case("read-only results folder (found before any cell)", "fixed",
         "mkdir -p r15 && chmod 500 r15 && $E bench a6 --device host --out r15/x; rc=$?; chmod 700 r15; exit $rc"),
    Case("disk full while appending a row (file size limit)", "fixed",
         "(ulimit -f 4; $E bench a14 --device host --duration 0.3 --min-iters 3 --warmup-max 0.3 --e2e 0.1 --throughput 0 --out r16); rc=$?; "
         "python -c \"import glob; [open(p).read().endswith('\\n') or exit('torn line') for p in glob.glob('r16/host/*.jsonl')]\" && exit $rc"),
    # --- dataset errors ---
    Case("dataset folder missing", "kept", "$E eval good.safetensors --data nowhere"),
    Case("bad image, --workers 0", "fixed",
         "$E train --arch unet_tiny --data baddata --out w0.safetensors --epochs 1 --crop-size 48x64 --workers 0 --no-progress"),
    Case("bad image, --workers 2 (same one line)", "fixed",
         "$E train --arch unet_tiny --data baddata --out w2.safetensors --epochs 1 --crop-size 48x64 --workers 2 --no-progress"),
    # --- unexpected exceptions ---
    Case("internal error: one line + trace file", "fixed",
         "python -c \"import sys, edgekd.cli.models as m; m.run = lambda a: 1 / 0; from edgekd.cli import main; sys.exit(main(['models']))\"",
         "failed"),
    Case("internal error with --debug: the trace", "fixed",
         "python -c \"import sys, edgekd.cli.models as m; m.run = lambda a: 1 / 0; from edgekd.cli import main; "
         "sys.exit(main(['--debug', 'models']))\" 2>&1 | grep -m1 Traceback >&2; exit ${PIPESTATUS[0]}", "failed"),
    # --- remote safety ---
    Case("--host=-V (an ssh option as host)", "fixed", "$E bench a6 --device host --host=-V"),
    Case("profile ssh_options with ProxyCommand", "fixed", then_check("$E bench a6 --device proxy.yaml", NO_PWNED)),
    Case("SSH to a closed port fails fast", "kept", "s=$(date +%s); $E bench a6 --device closedport.yaml; rc=$?; echo \"($(( $(date +%s) - s )) s)\" >&2; exit $rc"),
    Case("names with ; and $() are inert (--run-id)", "kept", then_check("$E bench a6 --device host --run-id 'x;touch PWNED$(touch PWNED)'", NO_PWNED)),
    Case("names with ; and $() are inert (checkpoint file)", "kept",
         "cp good.safetensors 'x;touch PWNED.safetensors' && $E export 'x;touch PWNED.safetensors' --backend torch "
         "--precision fp32 --parity-images 0 --out a17 >/dev/null; rc=$?; "
         "test ! -e PWNED && echo \"exit $rc, no PWNED file\"", "ok"),
]


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("WARNING", "  warnings.warn"))]
    return lines[0] if lines else ""


def run_case(case: Case, w: Path, timeout_s: float) -> tuple[int, str, float]:
    env = dict(os.environ, E=shlex.quote(EDGEKD), W=str(w), COLUMNS="250", PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["bash", "-c", case.shell.replace("$E", '"$E"' if " " in EDGEKD else "$E")], cwd=w, env=env,
                              capture_output=True, text=True, timeout=timeout_s, start_new_session=True)
        rc, message = proc.returncode, _first_line(proc.stderr) or _first_line(proc.stdout)
    except subprocess.TimeoutExpired as err:
        rc, message = -1, f"TIMEOUT after {timeout_s:.0f} s ({_first_line(str(err.stderr or ''))})"
    return rc, message, time.perf_counter() - t0


def _verdict(case: Case, rc: int) -> str:
    good = {"refused": rc not in (0, -1) and rc < 128, "ok": rc == 0, "failed": rc == 1}[case.expect]
    return "as intended" if good else "**UNEXPECTED**"


def table(rows: list[tuple[Case, int, str, float]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| # | case | issue 16 | command (in `$W`) | exit | first line of the message | |", "|---|---|---|---|---|---|---|"]
    for i, (case, rc, message, _) in enumerate(rows, 1):
        cmd = case.shell.replace("$E", "edgekd")
        out.append(f"| {i} | {cell(case.name)} | {case.kind} | `{cell(cmd)}` | {rc} | {cell(message[:400])} | {_verdict(case, rc)} |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    parser.add_argument("--only", default=None, help="run only cases whose name contains this text")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per case (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--list", action="store_true", help="print the cases and the intended outcome, run nothing")
    args = parser.parse_args()
    if args.list:
        print("| # | case | issue 16 | command (in `$W`) | intended |\n|---|---|---|---|---|")
        for i, case in enumerate(CASES, 1):
            intended = {"refused": "one-line error, exit 2 (or 1 for a failed result)", "ok": "exit 0",
                        "failed": "exit 1 (result not usable, said why)"}[case.expect]
            cmd = case.shell.replace("$E", "edgekd").replace("|", "\\|")
            print(f"| {i} | {case.name} | {case.kind} | `{cmd}` | {intended} |")
        return 0
    w = Path(tempfile.mkdtemp(prefix="edgekd-hardening-"))
    try:
        make_inputs(w)
        rows = []
        for case in CASES:
            if args.only and args.only not in case.name:
                continue
            rc, message, seconds = run_case(case, w, args.timeout)
            rows.append((case, rc, message, seconds))
            print(f"[{seconds:5.1f} s] {case.name}: exit {rc} — {message[:150]}", file=sys.stderr, flush=True)
            if args.out:  # after every case: a run cut short still leaves the rows it has
                args.out.write_text(table(rows) + "\n")
        print(table(rows))
        return 0 if all(_verdict(c, rc) == "as intended" for c, rc, _, _ in rows) else 1
    finally:
        if args.keep:
            print(f"work folder kept: {w}", file=sys.stderr)
        else:
            subprocess.run(["chmod", "-R", "u+w", str(w)], check=False)
            shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
