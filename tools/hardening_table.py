"""Run every bad input and fault of issue 16 against the ``edgekd`` CLI and print the table.

    nice -n 10 env OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python tools/hardening_table.py [--out table.md] [--list]

Each case is one command on tiny synthetic inputs (a 64x96 synthetic dataset, untrained
``unet_tiny``/``espnet_p2q8`` checkpoints made here with the library) in a fresh temporary folder;
the table gives the case, the command (``$W`` is that folder), the exit code, the line of output
holding the expected text, and the verdict. A case is "as intended" only when its exit code is the
expected one, its output holds the expected text (the right message, not any failure) and no
Python traceback was printed (except with ``--debug``). Cases needing more than a command (a
kill -9 in the middle, a file size limit or a tiny tmpfs for a full disk, a read-only tmpfs for a
read-only folder) are small shell sequences, shown as they run; the two tmpfs cases need root and
are reported as skipped without it (the read-only case falls back to ``chmod 500``).

``kind``: ``kept`` = one of the 28 the issue found handled, recognisable from its text; ``fixed``
= one of its 17 failures (several on more than one command); ``reconstructed`` = a case of the
categories the issue names as handled (pickles refused everywhere, profiles validated, dataset
errors named, SSH failures in seconds, names with ``;`` or ``$()`` inert) whose exact command it
does not give. ``--list`` prints every case with its expected exit code, text and tests, running
nothing; ``tests/test_hardening.py::test_every_table_case_names_tests_that_exist`` checks the tests exist.
"""
from __future__ import annotations

import argparse
import os
import re
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
    kind: str  # "kept" (handled before issue 16) | "fixed" (one of its 17) | "reconstructed" (see the module doc)
    shell: str  # run with bash in the work folder; $W is the work folder, $E the edgekd command
    rc: int  # the expected exit code: 2 a refused input, 1 a result that is not usable (said why), 0 fine
    match: str  # a regular expression the output (stderr + stdout) must hold: the right message, not just any failure
    tests: tuple[str, ...]  # the pytest node ids (path::function) that check the same case
    allow_trace: bool = False  # only --debug may print a Python traceback


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
    torch.manual_seed(0)
    save_checkpoint(w / "esp.safetensors", create_model("espnet_p2q8", num_classes=7), CheckpointMeta(
        arch="espnet_p2q8", num_classes=7, class_names=[f"c{i}" for i in range(7)], ignore_index=255, input_size=[64, 96],
        mean=[0.0] * 3, std=[255.0] * 3, trained_with={"method": "hardening-table"}))
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
    # datasets with one bad pair each (checked by `edgekd data inspect`)
    import numpy as np
    from PIL import Image

    for name in ("masksize", "badlabel", "nomask"):
        shutil.copytree(data, w / name)
    mask = w / "masksize" / "masks" / "train_00000.png"
    Image.fromarray(np.asarray(Image.open(mask))[:, :-1]).save(mask)
    mask = w / "badlabel" / "masks" / "train_00000.png"
    Image.fromarray(np.full_like(np.asarray(Image.open(mask)), 40)).save(mask)
    (w / "nomask" / "masks" / "train_00000.png").unlink()
    # what bench would take from a folder of artifacts (its own discovery and plan, no timing)
    (w / CANDIDATES).write_text(
        "import sys\nfrom edgekd.bench.plan import discover_artifacts, plan_cells\nfrom edgekd.errors import EdgekdError\n"
        "from edgekd.profiles import load_profile\ntry:\n"
        "    cells, _ = plan_cells(load_profile('host'), discover_artifacts(sys.argv[1:]))\n"
        "except EdgekdError as err:\n    sys.exit(print('none (' + str(err).split(';')[0] + ')'))\n"
        "print(' '.join(sorted(f'{c.artifact_dir.parent.name}/{c.artifact_dir.name}' for c in cells)) or 'none')\n")
    # profiles: malformed YAML, unknown key, ProxyCommand, wrong type
    host = yaml.safe_load((REPO / "device_profiles" / "host.yaml").read_text())
    (w / "broken.yaml").write_text("name: broken\nreal_time:\n  target_fps: [30\n  latency_budget_ms: 33\n")
    for name, change in {
        "unknownkey": {"colour": "red"},
        "proxy": {"connection": {"type": "ssh", "host": "user@127.0.0.1", "ssh_options": ["-oProxyCommand=touch PWNED"]}},
        "wrongtype": {"real_time": {**host["real_time"], "target_fps": "fast"}},
        "closedport": {"connection": {"type": "ssh", "host": "user@127.0.0.1", "port": 9}},
        "unknownhost": {"connection": {"type": "ssh", "host": "user@nosuchhost.invalid"}},
        "blackhole": {"connection": {"type": "ssh", "host": "user@192.0.2.1", "ssh_options": ["-oConnectTimeout=3"]}},
        "negfps": {"real_time": {**host["real_time"], "target_fps": -5}},
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
CANDIDATES = "candidates.py"

def H(*names: str) -> tuple[str, ...]:
    return tuple(f"tests/test_hardening.py::{n}" for n in names)


FAST_BENCH = "--duration 0.3 --min-iters 3 --warmup-max 0.3 --e2e 0.1 --throughput 0"
PICKLE = "checkpoint evil.pth refused: it is a pickle that would run code"
PICKLE_TESTS = (*H("test_code_running_pickle_is_refused_by_every_command"), "tests/test_checkpoint.py::test_pickle_that_runs_code_is_refused")
ROOT_ONLY = 77  # a case's exit code when it needs root (a tmpfs mount) and is not root: reported as skipped

CASES = [
    # --- checkpoints that are not what they claim ---
    Case("code-running pickle, eval", "kept", then_check("$E eval evil.pth --arch unet_tiny --data data", NO_PWNED), 2, PICKLE, PICKLE_TESTS),
    Case("code-running pickle, export", "kept",
         then_check("$E export evil.pth --arch unet_tiny --backend torch --precision fp32 --out a0", NO_PWNED), 2, PICKLE, PICKLE_TESTS),
    Case("code-running pickle, doctor", "kept", then_check("$E doctor evil.pth --arch unet_tiny", NO_PWNED), 2, PICKLE, PICKLE_TESTS),
    Case("code-running pickle, distill --teacher", "kept",
         then_check("$E distill --teacher evil.pth --teacher-arch unet_tiny --student unet_tiny --data data --out s.safetensors --epochs 1",
                    NO_PWNED), 2, PICKLE, PICKLE_TESTS),
    Case("code-running pickle, distill --init", "reconstructed",
         then_check("$E distill --init evil.pth --init-arch unet_tiny --student unet_tiny --data data --out s.safetensors --epochs 1",
                    NO_PWNED), 2, PICKLE, PICKLE_TESTS),
    Case("torch's 'weights_only=False' advice never repeated", "fixed",
         "out=$($E eval evil.pth --arch unet_tiny --data data 2>&1); rc=$?; echo \"$out\" >&2; "
         "echo \"$out\" | grep -q 'weights_only\\|Re-running\\|likely succeed' && exit 99; exit $rc", 2, PICKLE,
         H("test_refusal_never_repeats_torchs_advice_to_turn_the_protection_off")),
    Case("truncated safetensors, eval", "fixed", "$E eval truncated.safetensors --data data", 2,
         r"checkpoint truncated.safetensors is truncated: \d+ bytes, its header describes \d+", H("test_broken_checkpoint_files_are_one_line_errors")),
    Case("zero-byte checkpoint, export", "fixed", "$E export empty.safetensors --backend torch --precision fp32 --out a0", 2,
         r"checkpoint empty.safetensors is an empty file \(0 bytes\)", H("test_broken_checkpoint_files_are_one_line_errors")),
    Case("pickle renamed .safetensors, doctor", "fixed", "$E doctor renamed.safetensors", 2,
         r"checkpoint renamed.safetensors is a pickle file named .safetensors", H("test_broken_checkpoint_files_are_one_line_errors")),
    Case("truncated teacher, distill", "fixed",
         "$E distill --teacher truncated.safetensors --student unet_tiny --data data --out s.safetensors", 2,
         r"edgekd distill: error: checkpoint truncated.safetensors is truncated", H("test_broken_checkpoint_files_are_one_line_errors")),
    Case("code-running train_state, train --resume", "fixed",
         then_check("$E train --arch unet_tiny --data data --out resume.safetensors --resume --epochs 1 --batch-size 2 "
                    "--crop-size 48x64 --no-progress", NO_PWNED), 2,
         r"train state resume.train_state.pt refused: it is a pickle that would run code", H("test_train_resume_refuses_a_code_running_train_state")),
    # --- class count ---
    Case("class count differs, eval", "fixed", "$E eval five.safetensors --data data", 2, r"predicts 5 classes but dataset .* has 7",
         H("test_eval_refuses_other_class_count", "test_eval_accepts_one_trailing_void_channel_only_when_ignore_is_the_class_count")),
    Case("class count differs, export parity", "fixed",
         then_check("$E export five.safetensors --backend torch --precision fp32 --data data --parity-images 2 --out a1", "test ! -e a1"), 2,
         r"predicts 5 classes but dataset data \[val\] for parity has 7", H("test_export_parity_refuses_other_class_count")),
    Case("class count differs, bench accuracy", "fixed",
         "$E export five.safetensors --backend torch --precision fp32 --parity-images 0 --out a2 >/dev/null && "
         "$E bench a2 --device host --data data --out r2; rc=$?; test ! -e r2 || exit 99; exit $rc", 2,
         r"torch-fp32 predicts 5 classes but dataset .* has 7", H("test_bench_refuses_other_class_count")),
    # --- NaN / Inf ---
    Case("NaN weights, export parity (manifest strict JSON)", "fixed",
         "$E export nan.safetensors --backend torch --precision fp32 --data data --parity-images 2 --out a3; rc=$?; "
         "python -c \"import json,sys; m=json.load(open('a3/nan/torch-fp32/manifest.json'), parse_constant=lambda c: sys.exit('NaN in JSON')); "
         "print('manifest (strict JSON) parity:', m['parity']['status'])\" && exit $rc", 1,
         r"NaN/Inf weight values[\s\S]*manifest \(strict JSON\) parity: failed",
         H("test_export_of_nan_weights_is_a_failed_parity_and_valid_json", "test_parity_of_nan_logits_is_failed_never_ok",
           "test_manifest_writer_never_writes_nan")),
    Case("NaN weights, bench cell", "fixed",
         "$E export nan.safetensors --backend torch --precision fp32 --parity-images 0 --out a4 >/dev/null; "
         f"$E bench a4 --device host {FAST_BENCH} --data data "
         "--eval-images 1 --out r4 >/dev/null; python -c \"import json,glob; r=json.loads(open(glob.glob('r4/host/*.jsonl')[0]).readline()); "
         "print('row status:', r['status'], '-', r['error'].splitlines()[0], '- latency_ms:', r['latency_ms']); "
         "raise SystemExit(r['status'] != 'failed')\"", 0, r"row status: failed - NonFiniteOutput: .* NaN or Inf",
         H("test_bench_cell_of_nan_artifact_is_failed_with_the_reason", "test_bench_accuracy_of_nan_output_fails")),
    # --- compare ---
    Case("compare on a row of the wrong shape", "fixed",
         "mkdir -p r5/host && echo '{\"foo\": 1}' > r5/host/x.jsonl && $E compare r5", 1,
         r"SKIPPED 1 of 1 result rows that do not follow the results schema", H("test_compare_skips_and_counts_rows_of_the_wrong_shape")),
    # --- overwrite refusals ---
    Case("train --out onto an existing checkpoint", "fixed",
         "$E train --arch unet_tiny --data data --out good.safetensors --epochs 1 --batch-size 2", 2,
         r"--out good.safetensors exists; pass --force", H("test_train_out_onto_an_existing_checkpoint_needs_force")),
    Case("export onto an existing artifact", "kept",
         "$E export good.safetensors --backend torch --precision fp32 --parity-images 0 --out a6 >/dev/null && "
         "$E export good.safetensors --backend torch --precision fp32 --parity-images 0 --out a6", 2,
         r"output folder a6/good/torch-fp32 exists; pass --force", ("tests/test_export.py::test_force_replaces_and_refuses_without_it",)),
    Case("doctor --fix onto an existing file", "kept", "$E doctor good.safetensors --fix five.safetensors", 2,
         r"--fix output five.safetensors exists", ("tests/test_doctor_cli.py::test_fix_refuses_a_bad_output_before_doing_anything",)),
    Case("data synth into a non-empty folder", "kept", "$E data synth data --num-train 1 --num-val 1", 2,
         r"already exists and is not empty", ("tests/test_data.py::test_generator_refuses_to_overwrite",)),
    # --- messages ---
    Case("install hint keeps its [extra] (rich markup)", "fixed",
         "$E compare r8 > compare8.txt; rc=$?; grep -m1 -o \"pip install 'edgekd\\[openvino\\]'\" compare8.txt; exit $rc", 0,
         r"pip install 'edgekd\[openvino\]'",
         H("test_console_messages_keep_square_brackets", "test_doctor_report_keeps_square_brackets")
         + ("tests/test_report.py::test_record_text_is_escaped",)),
    Case("malformed YAML profile", "fixed", "$E bench a6 --device broken.yaml", 2,
         r"profile broken.yaml:4:20: invalid YAML: ",
         H("test_malformed_yaml_profile_is_one_line_with_file_line_and_column", "test_malformed_dataset_yaml_is_one_line")),
    Case("profile with an unknown key", "kept", "$E bench a6 --device unknownkey.yaml", 2, r"unknownkey.yaml: unknown key 'colour'",
         ("tests/test_profiles.py::test_unknown_top_level_key_names_key_and_file",)),
    Case("profile with a wrong type", "kept", "$E bench a6 --device wrongtype.yaml", 2, r"target_fps must be float, found 'fast'",
         ("tests/test_profiles.py::test_wrong_type_and_bad_value_are_named",)),
    Case("unknown device name", "kept", "$E bench a6 --device jetson-orin-nan", 2,
         r"unknown device profile 'jetson-orin-nan'. Did you mean 'jetson-orin-nano'", ("tests/test_bench_run.py::test_cli_errors_are_one_line_with_the_fix",)),
    Case("unknown backend", "kept", "$E export good.safetensors --backend onnxrt --out a8", 2,
         r"unknown backend 'onnxrt' \(did you mean 'onnxruntime'\?\)", ("tests/test_export_cli.py::test_cli_errors_are_one_line_with_exit_code_2",)),
    Case("INT8 without calibration images", "kept", "$E export good.safetensors --backend onnxruntime --precision int8 --out a8", 2,
         r"INT8 needs real calibration images", ("tests/test_export_cli.py::test_cli_errors_are_one_line_with_exit_code_2",)),
    # --- input size: one rule ---
    Case("export --input-size 63x95 (off the stride grid)", "fixed",
         "$E export good.safetensors --backend torch --precision fp32 --parity-images 0 --input-size 63x95 --out a9 > export9.txt; "
         "rc=$?; grep -m1 'not a multiple' export9.txt; exit $rc", 0, r"63x95 is not a multiple of the output stride 16; the model runs at it",
         H("test_export_and_doctor_apply_one_input_size_rule")
         + ("tests/test_export.py::test_an_off_stride_size_the_model_handles_is_exported_with_a_note",)),
    Case("doctor at 63x95: same verdict as export", "fixed",
         "$E doctor a9/good/torch-fp32 --json | python -c \"import json,sys; f=[x for x in json.load(sys.stdin)['findings'] "
         "if x['code'].startswith('stride')]; print(f[0]['severity'], f[0]['code'], f[0]['what'])\"; exit ${PIPESTATUS[1]}", 0,
         r"^warning stride-offgrid", H("test_export_and_doctor_apply_one_input_size_rule")),
    Case("export --input-size refused where the model fails (ESPNet needs /8)", "kept",
         "$E export esp.safetensors --backend torch --input-size 63x95 --out a10", 2,
         r"input size 63x95 is not divisible by espnet_p2q8's output stride 8 and the model fails at it",
         ("tests/test_export.py::test_a_size_the_model_cannot_run_at_is_refused_with_the_stride",
          "tests/test_input_sizes.py::test_a_size_the_model_cannot_take_fails_the_whole_call_before_writing")),
    # --- half-written files after a kill ---
    Case("kill -9 during export; bench then takes no .tmp; re-export cleans it", "fixed",
         "($E export good.safetensors --backend onnxruntime,torch --precision fp32 --data data --parity-images 2 --out a11 "
         ">/dev/null 2>&1 & pid=$!; for i in $(seq 600); do ls -A a11/good 2>/dev/null | grep -q '\\.tmp$' && break; sleep 0.1; done; "
         "kill -9 $pid; wait $pid 2>/dev/null); left=$(ls -A a11/good | grep -c '^\\.'); "
         f"before=$(python {CANDIDATES} a11); "
         "$E export good.safetensors --backend onnxruntime,torch --precision fp32 --data data --parity-images 2 --out a11 --force >/dev/null; "
         f"after=$(ls -A a11/good | grep -c '^\\.'); echo \"kill -9 left $left hidden temporaries; bench candidates then: $before; "
         f"after re-export: $after temporaries, bench candidates: $(python {CANDIDATES} a11)\"; test $left -gt 0 -a $after -eq 0", 0,
         r"kill -9 left [1-9]\d* hidden temporaries; bench candidates then: [^\n]*; after re-export: 0 temporaries, "
         r"bench candidates: good/onnxruntime-fp32 good/torch-fp32",
         H("test_kill_9_during_export_then_bench_and_reexport", "test_export_cleans_stale_temporaries_of_killed_runs_only")),
    Case("bench never takes a .tmp folder", "fixed",
         "cp -r a6/good/torch-fp32 a6/good/.torch-fp32.pid1.x.tmp && $E bench a6/good/.torch-fp32.pid1.x.tmp --device host", 2,
         r"is the temporary folder of an export that did not finish", H("test_bench_takes_only_complete_artifacts")),
    Case("bench skips an incomplete artifact", "fixed",
         "cp -r a6/good/torch-fp32 a12 && python -c \"import json; p='a12/manifest.json'; m=json.load(open(p)); "
         "m['complete']=False; m['parity']={'status': 'pending'}; json.dump(m, open(p,'w'))\" && $E bench a12 --device host", 2,
         r"a12: not benchmarked: its manifest says the export did not complete", H("test_bench_takes_only_complete_artifacts")),
    Case("export with a missing backend package leaves no --out", "fixed",
         then_check("$E export good.safetensors --backend litert --precision fp32 --parity-images 0 --out a13", "test ! -e a13"), 2,
         r"is not installed .*pip install 'edgekd\[litert\]'", H("test_export_with_missing_backend_package_leaves_no_out_folder")),
    Case("bench resume after kill -9", "kept",
         "$E export good.safetensors --backend onnxruntime --precision fp32 --input-size 64x96,32x48 --parity-images 0 --out a14 >/dev/null; "
         "($E bench a14 --device host --duration 0.5 --min-iters 3 --warmup-max 0.3 --e2e 0.1 --throughput 0 --run-id k --out r14 "
         ">/dev/null 2>&1 & pid=$!; for i in $(seq 900); do test -s r14/host/k.jsonl && break; sleep 0.1; done; kill -9 $pid; wait $pid 2>/dev/null); "
         "n=$(wc -l < r14/host/k.jsonl); "
         "$E bench a14 --device host --duration 0.5 --min-iters 3 --warmup-max 0.3 --e2e 0.1 --throughput 0 --resume k --out r14 >/dev/null; "
         "echo \"rows at the kill: $n; after --resume: $(wc -l < r14/host/k.jsonl) (2 cells)\"", 0, r"rows at the kill: 1; after --resume: 2 \(2 cells\)",
         ("tests/test_bench_run.py::test_kill_9_mid_matrix_then_resume_runs_only_missing_cells",
          "tests/test_results.py::test_line_cut_by_a_kill_is_skipped_then_terminated")),
    # --- read-only results / disk full ---
    Case("read-only results folder (found before any cell)", "fixed",
         "mkdir -p r15; if [ $(id -u) = 0 ]; then mount -t tmpfs -o ro,size=64k tmpfs r15 || exit 77; else chmod 500 r15; fi; "
         f"s=$(date +%s); $E bench a14 --device host {FAST_BENCH} --out r15/x; rc=$?; "
         "echo \"(after $(( $(date +%s) - s )) s)\"; umount r15 2>/dev/null || chmod 700 r15; exit $rc", 2,
         r"results folder r15/x/host is not writable \((Read-only file system|Permission denied)",
         H("test_read_only_results_folder_is_refused_before_any_cell")),
    Case("file size limit hit while appending a row (ulimit -f: EFBIG)", "fixed",
         f"(ulimit -f 8; $E bench a14 --device host {FAST_BENCH} --run-id f --out r16); rc=$?; "
         "python -c \"import sys; t=open('r16/host/f.jsonl').read(); print('rows kept:', t.count(chr(10)), '(no torn line)' "
         "if t.endswith(chr(10)) else 'TORN'); sys.exit(not t.endswith(chr(10)))\" || exit 99; "
         f"$E bench a14 --device host {FAST_BENCH} --resume f --out r16 >/dev/null && echo \"after --resume without the limit: "
         "$(wc -l < r16/host/f.jsonl) rows\"; exit $rc", 2,
         r"cannot append a result row to r16/host/f.jsonl: File too large \(the row needs [\d,]+ bytes\); the file is unchanged"
         r"[\s\S]*rows kept: 1 \(no torn line\)[\s\S]*after --resume without the limit: 2 rows",
         H("test_append_past_the_file_size_limit_leaves_the_file_as_it_was", "test_failed_first_append_leaves_no_file")),
    Case("disk full while appending a row (a 12 kB tmpfs: ENOSPC)", "fixed",
         "mkdir -p r17; [ $(id -u) = 0 ] && mount -t tmpfs -o size=12k tmpfs r17 || exit 77; "
         f"$E bench a14 --device host {FAST_BENCH} --run-id d --out r17; rc=$?; "
         "python -c \"import sys; t=open('r17/host/d.jsonl').read(); print('rows kept:', t.count(chr(10)), '(no torn line)' "
         "if t.endswith(chr(10)) else 'TORN'); sys.exit(not t.endswith(chr(10)))\"; ok=$?; umount r17; test $ok = 0 || exit 99; exit $rc", 2,
         r"cannot append a result row to r17/host/d.jsonl: No space left on device \(the row needs [\d,]+ bytes; [\d,]+ bytes are free there\)"
         r"[\s\S]*rows kept: 1 \(no torn line\)",
         H("test_append_on_a_full_disk_leaves_the_file_as_it_was_and_says_the_space")),
    # --- dataset errors ---
    Case("dataset folder missing", "kept", "$E eval good.safetensors --data nowhere", 2, r"dataset folder .*nowhere does not exist",
         ("tests/test_data.py::test_open_errors",)),
    Case("mask of another size than its image", "reconstructed", "$E data inspect masksize", 2, r"masks/train_00000.png is \d+x\d+ but image",
         ("tests/test_data.py::test_mismatched_sizes_and_labels_out_of_range",)),
    Case("label value out of range", "reconstructed", "$E data inspect badlabel", 2, r"has label value\(s\) \[40\]",
         ("tests/test_data.py::test_mismatched_sizes_and_labels_out_of_range",)),
    Case("image without a mask", "reconstructed", "$E data inspect nomask", 2, r"train_00000.png has no mask",
         ("tests/test_data.py::test_image_without_mask",)),
    Case("bad image, --workers 0", "fixed",
         "$E train --arch unet_tiny --data baddata --out w0.safetensors --epochs 1 --batch-size 2 --crop-size 48x64 --workers 0 --no-progress", 2,
         r"error: \S+/baddata/images/train_\d+.png is not a readable image \(9 bytes\); replace or remove it$",
         H("test_bad_image_is_the_same_one_line_with_and_without_workers")),
    Case("bad image, --workers 2 (same one line)", "fixed",
         "$E train --arch unet_tiny --data baddata --out w2.safetensors --epochs 1 --batch-size 2 --crop-size 48x64 --workers 2 --no-progress", 2,
         r"error: \S+/baddata/images/train_\d+.png is not a readable image \(9 bytes\); replace or remove it \(in DataLoader worker \d\)$",
         H("test_bad_image_is_the_same_one_line_with_and_without_workers", "test_worker_error_message_is_the_workers_one_line")),
    # --- unexpected exceptions ---
    Case("internal error: one line + trace file", "fixed",
         "EDGEKD_CACHE=$W/cache python -c \"import sys, edgekd.cli.models as m; m.run = lambda a: 1 / 0; from edgekd.cli import main; "
         "sys.exit(main(['models']))\"; rc=$?; echo \"trace file: $(grep -c '^Traceback' cache/crashes/*.txt) traceback, "
         "$(grep -c 'ZeroDivisionError' cache/crashes/*.txt) ZeroDivisionError line(s)\"; exit $rc", 1,
         r"internal error \(a bug in edgekd or a library it calls\): ZeroDivisionError: division by zero — full trace in \S+/cache/crashes/\S+\.txt; "
         r"re-run with --debug to see it[\s\S]*trace file: 1 traceback",
         H("test_unexpected_exception_is_one_line_naming_the_trace_file")),
    Case("internal error with --debug: the trace", "fixed",
         "python -c \"import sys, edgekd.cli.models as m; m.run = lambda a: 1 / 0; from edgekd.cli import main; "
         "sys.exit(main(['--debug', 'models']))\"", 1, r"^Traceback \(most recent call last\)",
         H("test_debug_shows_the_trace_of_an_unexpected_exception"), allow_trace=True),
    # --- remote safety ---
    Case("--host=-V (an ssh option as host)", "fixed", "$E bench a6 --device host --host=-V", 2,
         r"--host '-V' is not an ssh destination: it must be user@host or host, not start with '-'",
         H("test_host_starting_with_dash_is_refused", "test_ssh_gets_end_of_options_before_the_destination")),
    Case("profile ssh_options with ProxyCommand", "fixed", then_check("$E bench a6 --device proxy.yaml", NO_PWNED), 2,
         r"ssh option 'ProxyCommand' is refused: a shared profile may not set options that run commands",
         H("test_profile_ssh_options_that_run_code_are_refused", "test_profile_safe_ssh_options_are_accepted")),
    Case("SSH to a closed port fails fast", "kept",
         "s=$(date +%s); $E bench a6 --device closedport.yaml; rc=$?; echo \"($(( $(date +%s) - s )) s)\"; exit $rc", 2,
         r"cannot reach ssh user@127.0.0.1:9 over ssh: .*Connection refused", ("tests/test_bench_remote.py::test_unreachable_host_is_a_clear_error",)),
    Case("SSH to an unknown host name fails fast", "reconstructed",
         "s=$(date +%s); $E bench a6 --device unknownhost.yaml; rc=$?; echo \"($(( $(date +%s) - s )) s)\"; exit $rc", 2,
         r"cannot reach ssh user@nosuchhost.invalid", H("test_ssh_to_an_unknown_host_name_is_one_line")),
    Case("SSH to a TEST-NET address (192.0.2.1, ConnectTimeout=3) fails fast", "reconstructed",
         "s=$(date +%s); $E bench a6 --device blackhole.yaml; rc=$?; echo \"($(( $(date +%s) - s )) s)\"; exit $rc", 2,
         r"cannot reach ssh user@192.0.2.1", ("tests/test_bench_remote.py::test_unreachable_host_is_a_clear_error",)),
    Case("profile with a bad value (negative FPS)", "reconstructed", "$E bench a6 --device negfps.yaml", 2,
         r"real_time.target_fps = -5.0 is not allowed; use a positive number", ("tests/test_profiles.py::test_wrong_type_and_bad_value_are_named",)),
    Case("names with ; and $() are inert (--run-id)", "kept",
         then_check("$E bench a6 --device host --run-id 'x;touch PWNED$(touch PWNED)'", NO_PWNED), 2,
         r"--run-id 'x;touch PWNED\$\(touch PWNED\)': use letters, digits", ("tests/test_bench_run.py::test_named_run_id_then_resume_by_that_name",)),
    Case("names with ; and $() are inert (--device)", "reconstructed",
         then_check("$E bench a6 --device 'x;touch PWNED$(touch PWNED)'", NO_PWNED), 2, r"unknown device profile 'x;touch PWNED\$\(touch PWNED\)'",
         H("test_shell_characters_in_names_are_inert")),
    Case("names with ; and $() are inert (checkpoint file)", "kept",
         "cp good.safetensors 'x;touch PWNED.safetensors' && $E export 'x;touch PWNED.safetensors' --backend torch "
         "--precision fp32 --parity-images 0 --out a17 >/dev/null; rc=$?; "
         "test ! -e PWNED && echo \"exported (exit $rc), no PWNED file\"", 0, r"exported \(exit 0\), no PWNED file",
         H("test_shell_characters_in_names_are_inert")),
    Case("--input-size that is not HxW", "reconstructed", "$E export good.safetensors --backend torch --input-size 64by96 --out a8", 2,
         r"input size '64by96' must be HxW", ("tests/test_export_cli.py::test_cli_errors_are_one_line_with_exit_code_2",)),
    Case("bench --resume of a run that does not exist", "reconstructed", "$E bench a6 --device host --resume nosuchrun --out r14", 2,
         r"--resume nosuchrun: no such run for device 'host'", H("test_resume_of_an_unknown_run_names_the_latest")),
]


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("WARNING", "  warnings.warn"))]
    return lines[0] if lines else ""


@dataclass
class Outcome:
    rc: int
    message: str  # the line that holds the expected text, else the first line (stderr first)
    output: str  # stderr + stdout
    seconds: float


def run_case(case: Case, w: Path, timeout_s: float) -> Outcome:
    # `python` in a case is the interpreter running this tool (the one edgekd is installed in)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = dict(os.environ, E=shlex.quote(EDGEKD), W=str(w), COLUMNS="250", PYTHONWARNINGS="ignore", PATH=path)
    env.pop("EDGEKD_DEBUG", None)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(["bash", "-c", case.shell.replace("$E", '"$E"' if " " in EDGEKD else "$E")], cwd=w, env=env,
                              capture_output=True, text=True, timeout=timeout_s, start_new_session=True)
        rc, output = proc.returncode, proc.stderr + proc.stdout
        found = re.search(case.match, output, re.M)
        message = found.group(0).split("\n", 1)[0] if found else ""
        if found:  # the whole line the expected text starts on
            start = output.rfind("\n", 0, found.start()) + 1
            message = output[start:].split("\n", 1)[0].strip()
        message = message or _first_line(proc.stderr) or _first_line(proc.stdout)
    except subprocess.TimeoutExpired as err:
        rc, output = -1, str(err.stderr or "")
        message = f"TIMEOUT after {timeout_s:.0f} s ({_first_line(output)})"
    return Outcome(rc, message, output, time.perf_counter() - t0)


def verdict(case: Case, out: Outcome) -> str:
    """"as intended" only with the expected exit code, the expected text, and no traceback (unless --debug asked)."""
    if out.rc == ROOT_ONLY:
        return "skipped (needs root for a tmpfs)"
    problems = []
    if out.rc != case.rc:
        problems.append(f"exit {out.rc}, not {case.rc}")
    if not re.search(case.match, out.output, re.M):
        problems.append("expected text missing")
    if not case.allow_trace and "Traceback (most recent call last)" in out.output:
        problems.append("a traceback was printed")
    return "as intended" if not problems else "**UNEXPECTED**: " + "; ".join(problems)


def table(rows: list[tuple[Case, Outcome]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    out = ["| # | case | issue 16 | command (in `$W`) | exit | message (the line with the expected text) | verdict |",
           "|---|---|---|---|---|---|---|"]
    for i, (case, o) in enumerate(rows, 1):
        cmd = case.shell.replace("$E", "edgekd")
        out.append(f"| {i} | {cell(case.name)} | {case.kind} | `{cell(cmd)}` | {o.rc} | {cell(o.message[:400])} | {verdict(case, o)} |")
    return "\n".join(out)


def _unmount_below(w: Path) -> None:
    """Unmount a tmpfs a case left mounted (a case cut short by its timeout)."""
    try:
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for point in mounts:
        if point.startswith(str(w) + "/"):
            subprocess.run(["umount", point], check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this markdown file")
    parser.add_argument("--only", default=None, help="run only cases whose name contains this text")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per case (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--list", action="store_true", help="print the cases and the intended outcome, run nothing")
    args = parser.parse_args()
    if args.list:
        print("| # | case | issue 16 | command (in `$W`) | exit | expected text | tests |\n|---|---|---|---|---|---|---|")
        for i, case in enumerate(CASES, 1):
            cmd = case.shell.replace("$E", "edgekd").replace("|", "\\|")
            tests = "<br>".join(f"`{t.split('::')[0].split('/')[-1]}::{t.split('::')[1]}`" for t in case.tests)
            match = case.match.replace("|", "\\|")
            print(f"| {i} | {case.name} | {case.kind} | `{cmd}` | {case.rc} | `{match}` | {tests} |")
        return 0
    w = Path(tempfile.mkdtemp(prefix="edgekd-hardening-"))
    try:
        make_inputs(w)
        rows = []
        for case in CASES:
            if args.only and args.only not in case.name:
                continue
            outcome = run_case(case, w, args.timeout)
            rows.append((case, outcome))
            print(f"[{outcome.seconds:5.1f} s] {case.name}: exit {outcome.rc} — {outcome.message[:150]} [{verdict(case, outcome)}]",
                  file=sys.stderr, flush=True)
            if args.out:  # after every case: a run cut short still leaves the rows it has
                args.out.write_text(table(rows) + "\n")
        print(table(rows))
        return 0 if all(verdict(c, o) == "as intended" or verdict(c, o).startswith("skipped") for c, o in rows) else 1
    finally:
        if args.keep:
            print(f"work folder kept: {w}", file=sys.stderr)
        else:
            _unmount_below(w)
            subprocess.run(["chmod", "-R", "u+w", str(w)], check=False)
            shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
