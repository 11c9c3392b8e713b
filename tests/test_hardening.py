"""Issue 16: every bad input a one-line error, nothing half-written, no silent wrong numbers.

One test per case of the issue (tools/hardening_table.py runs the same cases through the
installed CLI and prints the table of docs/hardening.md). Tiny models (unet_tiny, untrained) on
the session's synthetic dataset (7 classes, ignore 255), so each test takes seconds.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from edgekd.checkpoint import CheckpointMeta, save_checkpoint
from edgekd.cli import main
from edgekd.errors import EdgekdError
from edgekd.models import create_model

SYNTH_CLASSES = 7


def _checkpoint(path: Path, num_classes: int = SYNTH_CLASSES, *, nan: bool = False, ignore_index: int = 255) -> Path:
    torch.manual_seed(0)
    model = create_model("unet_tiny", num_classes=num_classes)
    if nan:
        with torch.no_grad():
            next(model.parameters()).fill_(float("nan"))
    meta = CheckpointMeta(arch="unet_tiny", num_classes=num_classes, class_names=[f"c{i}" for i in range(num_classes)],
                          ignore_index=ignore_index, input_size=[64, 96], mean=[0.0] * 3, std=[255.0] * 3,
                          trained_with={"method": "test"})
    return save_checkpoint(path, model, meta)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # one line, no traceback
    return err[0]


@pytest.fixture()
def void_dataset(synthetic_root, tmp_path) -> Path:
    """The synthetic dataset relabelled so that its ignore index (7) equals its class count, like CamVid's void."""
    root = tmp_path / "voidds"
    shutil.copytree(synthetic_root, root)
    doc = yaml.safe_load((root / "dataset.yaml").read_text())
    doc["ignore_index"] = SYNTH_CLASSES
    (root / "dataset.yaml").write_text(yaml.safe_dump(doc))
    return root


# --- class count ------------------------------------------------------------------------------

def test_eval_refuses_other_class_count(tmp_path, synthetic_root, capsys):
    ckpt = _checkpoint(tmp_path / "five.safetensors", 5)
    assert main(["eval", str(ckpt), "--data", str(synthetic_root), "--eval-images", "1"]) == 2
    line = _one_error_line(capsys)
    assert "predicts 5 classes" in line and "has 7" in line


def test_eval_accepts_one_trailing_void_channel_only_when_ignore_is_the_class_count(tmp_path, synthetic_root, void_dataset, capsys):
    ckpt = _checkpoint(tmp_path / "eight.safetensors", SYNTH_CLASSES + 1, ignore_index=SYNTH_CLASSES)
    assert main(["eval", str(ckpt), "--data", str(void_dataset), "--eval-images", "1", "--json"]) == 0
    assert "miou" in json.loads(capsys.readouterr().out)
    assert main(["eval", str(ckpt), "--data", str(synthetic_root), "--eval-images", "1"]) == 2  # ignore 255: not void
    assert "predicts 8 classes" in _one_error_line(capsys)


def test_void_head_predictions_count_as_wrong():
    from edgekd.metrics import ConfusionMatrix

    cm = ConfusionMatrix(2, ignore_index=2)
    cm.update(np.array([0, 2, 1, 1]), np.array([0, 0, 1, 2]))  # the void prediction at pixel 1 is a miss for class 0
    assert cm.per_class_iou().tolist() == [0.5, 1.0]


def test_export_parity_refuses_other_class_count(tmp_path, synthetic_root, capsys):
    ckpt = _checkpoint(tmp_path / "five.safetensors", 5)
    out = tmp_path / "out"
    rc = main(["export", str(ckpt), "--backend", "torch", "--precision", "fp32", "--data", str(synthetic_root),
               "--parity-images", "2", "--out", str(out)])
    assert rc == 2 and "predicts 5 classes" in _one_error_line(capsys)
    assert not out.exists()  # nothing written, not even an empty --out


def _torch_artifact(tmp_path: Path, ckpt: Path, data: Path | None = None) -> Path:
    from edgekd.export import export_checkpoint

    extra = {"data_dir": data, "parity_images": 2} if data else {"parity_images": 0}
    (path,) = export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path / "art", **extra)
    return path


def test_bench_refuses_other_class_count(tmp_path, synthetic_root):
    from edgekd.bench.runner import BenchOptions, run_bench
    from edgekd.metrics import ClassCountError
    from edgekd.profiles import load_profile

    artifact = _torch_artifact(tmp_path, _checkpoint(tmp_path / "five.safetensors", 5))
    with pytest.raises(ClassCountError, match="predicts 5 classes .* has 7"):
        run_bench(load_profile("host"), [artifact], BenchOptions(data=synthetic_root), tmp_path / "results")
    assert not (tmp_path / "results").exists()  # refused before any cell


# --- NaN / Inf --------------------------------------------------------------------------------

def _strict_json(path: Path) -> dict:
    def refuse(name):
        raise AssertionError(f"{path} holds {name}: not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_export_of_nan_weights_is_a_failed_parity_and_valid_json(tmp_path, synthetic_root, capsys):
    ckpt = _checkpoint(tmp_path / "nan.safetensors", nan=True)
    out = tmp_path / "out"
    rc = main(["export", str(ckpt), "--backend", "torch", "--precision", "fp32", "--data", str(synthetic_root),
               "--parity-images", "2", "--out", str(out)])
    assert rc == 1
    manifest = _strict_json(out / "nan" / "torch-fp32" / "manifest.json")
    assert manifest["parity"]["status"] == "failed" and "NaN/Inf" in manifest["parity"]["reason"]
    assert manifest["complete"] is True and "parity failed" in capsys.readouterr().out


def test_parity_of_nan_logits_is_failed_never_ok():
    from edgekd.parity import compare

    ref = np.zeros((1, 3, 4, 4), np.float32)
    cand = ref.copy()
    cand[0, 0, 0, 0] = np.nan
    result = compare(ref, cand, np.zeros((1, 4, 4), np.int64), num_classes=3, ignore_index=None)
    assert result["status"] == "failed" and "max_abs_logit_diff" not in result and "1 NaN/Inf" in result["reason"]


def test_manifest_writer_never_writes_nan(tmp_path):
    from edgekd.export.manifest import write_manifest

    write_manifest(tmp_path, {"a": float("nan"), "b": [float("inf"), 1.0], "c": {"d": -float("inf")}})
    assert _strict_json(tmp_path / "manifest.json") == {"a": None, "b": [None, 1.0], "c": {"d": None}}


def test_bench_accuracy_of_nan_output_fails(synthetic_root):
    from edgekd.bench.accuracy import evaluate_session, open_split
    from edgekd.bench.finite import NonFiniteOutput

    norm = {"mean": [0, 0, 0], "std": [1, 1, 1], "channel_order": "RGB"}
    nan = lambda x: np.full((1, SYNTH_CLASSES, *x.shape[-2:]), np.nan, np.float32)  # noqa: E731
    with pytest.raises(NonFiniteOutput, match="NaN or Inf"):
        evaluate_session(nan, lambda: None, open_split(str(synthetic_root)), input_hw=(64, 96), normalization=norm, limit=1)


@pytest.mark.slow
def test_bench_cell_of_nan_artifact_is_failed_with_the_reason(tmp_path, synthetic_root):
    from edgekd.bench.runner import BenchOptions, run_bench
    from edgekd.profiles import load_profile

    artifact = _torch_artifact(tmp_path, _checkpoint(tmp_path / "nan.safetensors", nan=True))
    opts = BenchOptions(duration_s=0.2, min_iters=3, warmup_max_s=0.2, e2e_s=0.1, paced_s=0.1, throughput_s=0.0,
                        data=synthetic_root, accuracy_images=1)
    (record,) = run_bench(load_profile("host"), [artifact], opts, tmp_path / "results").written
    assert record["status"] == "failed" and "NaN or Inf" in record["error"]
    assert record["latency_ms"] is None and (record["accuracy"] or {}).get("miou") is None


# --- compare ----------------------------------------------------------------------------------

def test_compare_skips_and_counts_rows_of_the_wrong_shape(tmp_path, capsys):
    from test_compare_fixtures import write_results

    results = write_results(tmp_path)
    run_file = next(results.rglob("*.jsonl"))
    with open(run_file, "a") as f:
        f.write('{"foo": 1}\n[1, 2]\n')
    assert main(["compare", str(results), "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    assert "SKIPPED 1 of" in err and "lacks key(s)" in err and "JSON list" in err
    assert "foo" not in out


# --- rich markup ------------------------------------------------------------------------------

def test_console_messages_keep_square_brackets():
    from rich.console import Console

    from edgekd.bench.display import results_table
    from edgekd.results import make_record

    record = make_record(status="unavailable", error="OpenVINO is not installed; pip install 'edgekd[openvino]'",
                         candidate={"label": "m[1]"}, backend={"name": "openvino"})
    console = Console(record=True, width=300)
    console.print(results_table([record], "t"))
    text = console.export_text()
    assert "pip install 'edgekd[openvino]'" in text and "m[1]" in text


def test_doctor_report_keeps_square_brackets(tmp_path):
    from rich.console import Console

    from edgekd.doctor.findings import DoctorReport, Finding
    from edgekd.doctor.report import render

    report = DoctorReport(str(tmp_path / "x[y].safetensors"), "checkpoint", ["host[a]"])
    report.add([Finding("warning", "code", "what [bold]", "why", "pip install 'edgekd[openvino]' and re-run", device="host[a]")])
    console = Console(record=True, width=300)
    render(report, console)
    text = console.export_text()
    assert "x[y].safetensors" in text and "edgekd[openvino]" in text and "host[a]" in text


# --- input size: one rule -----------------------------------------------------------------------

def test_export_and_doctor_apply_one_input_size_rule(tmp_path):
    from edgekd.doctor.shapes import check_stride
    from edgekd.input_sizes import check_input_size

    model = create_model("unet_tiny", num_classes=3)
    note = check_input_size(model, (63, 95), 8, "unet_tiny")  # export: accepted with a note ...
    (finding,) = check_stride((63, 95), 8, "x", model=model, arch="unet_tiny")  # ... doctor: the same verdict, a warning
    assert note and finding.severity == "warning" and "64x96" in note

    class Crops(torch.nn.Module):
        def forward(self, x):
            return x[..., : x.shape[-2] // 8 * 8, : x.shape[-1] // 8 * 8]

    with pytest.raises(EdgekdError, match="returns 56x88 logits"):  # export refuses ...
        check_input_size(Crops(), (63, 95), 8, "crops")
    (finding,) = check_stride((63, 95), 8, "x", model=Crops(), arch="crops")  # ... and doctor calls it an error
    assert finding.severity == "error" and "export refuses it" in finding.why_it_matters


# --- stale temporaries, complete artifacts ------------------------------------------------------

def _dead_pid() -> int:
    pid = 2 ** 22 - 1
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_export_cleans_stale_temporaries_of_killed_runs_only(tmp_path):
    from edgekd.export.temporaries import LEGACY_STALE_S

    ckpt = _checkpoint(tmp_path / "m.safetensors")
    root = tmp_path / "art" / "m"
    dead, live = _dead_pid(), os.getppid()
    stale = [root / f".torch-fp32.pid{dead}.ab12.tmp", root / f".edgekd-work-pid{dead}-cd34", root / f".coreml-fp32.pid{dead}.x.tmp"]
    legacy = root / ".onnxruntime-fp32.old1.tmp"
    kept = [root / f".torch-fp16.pid{live}.ef56.tmp", root / ".onnxruntime-fp32.new2.tmp"]  # a live run's; a fresh legacy one
    for folder in [*stale, legacy, *kept]:
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text('{"parity": {"status": "pending"}}')
    old = os.stat(legacy).st_mtime - LEGACY_STALE_S - 5
    os.utime(legacy, (old, old))
    _torch_artifact(tmp_path, ckpt)
    assert not any(p.exists() for p in [*stale, legacy]) and all(p.exists() for p in kept)
    assert (root / "torch-fp32" / "manifest.json").is_file()


def test_bench_takes_only_complete_artifacts(tmp_path):
    from edgekd.bench.plan import discover_artifacts, plan_cells
    from edgekd.profiles import load_profile

    artifact = _torch_artifact(tmp_path, _checkpoint(tmp_path / "m.safetensors"))
    tmp = artifact.parent / ".torch-fp32.pid1.zz.tmp"
    shutil.copytree(artifact, tmp)
    assert discover_artifacts([artifact.parent.parent]) == [artifact.resolve()]  # never the .tmp
    with pytest.raises(EdgekdError, match="temporary folder"):
        discover_artifacts([tmp])
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["complete"] is True
    (artifact / "manifest.json").write_text(json.dumps({**manifest, "complete": False, "parity": {"status": "pending"}}))
    cells, notes = plan_cells(load_profile("host"), [artifact])
    assert cells == [] and "did not complete" in notes[0]


def test_export_with_missing_backend_package_leaves_no_out_folder(tmp_path, monkeypatch, capsys):
    from edgekd.backends.base import BackendUnavailable
    from edgekd.backends.registry import get_backend

    def missing(request):
        raise BackendUnavailable("OpenVINO is not installed (No module named 'openvino'); pip install 'edgekd[openvino]'")

    monkeypatch.setattr(get_backend("torch"), "export", missing)
    ckpt = _checkpoint(tmp_path / "m.safetensors")
    out = tmp_path / "new" / "out"
    assert main(["export", str(ckpt), "--backend", "torch", "--precision", "fp32", "--out", str(out)]) == 2
    assert "edgekd[openvino]" in _one_error_line(capsys)
    assert not (tmp_path / "new").exists()


# --- remote -------------------------------------------------------------------------------------

def test_host_starting_with_dash_is_refused():
    from edgekd.profiles import ProfileError, load_profile

    for host in ("-V", "-oProxyCommand=touch /tmp/x", "a b"):
        with pytest.raises(ProfileError, match="not an ssh destination"):
            load_profile("host").with_host(host)
    assert main(["bench", "nothing", "--device", "host", "--host=-V"]) == 2  # before ssh is ever run


def test_ssh_gets_end_of_options_before_the_destination(monkeypatch):
    import subprocess

    from edgekd.bench.remote import SshTarget
    from edgekd.profiles import Connection

    seen = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: seen.append(cmd) or subprocess.CompletedProcess(cmd, 0, "", ""))
    SshTarget(Connection(type="ssh", host="user@example.org", ssh_options=("-oPort=2222",)))._ssh("true", 5)
    (cmd,) = seen
    assert cmd[-3:] == ["--", "user@example.org", "true"]


def _profile_with(tmp_path: Path, **connection) -> Path:
    doc = yaml.safe_load(Path("device_profiles/host.yaml").read_text()) if Path("device_profiles/host.yaml").exists() else None
    if doc is None:
        from edgekd.profiles import _profile_files

        doc = yaml.safe_load(_profile_files()["host"].read_text())
    doc["name"] = "shared"
    doc["connection"] = {"type": "ssh", "host": "user@example.org", **connection}
    path = tmp_path / "shared.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.parametrize("option", [["-oProxyCommand=touch /tmp/pwned"], ["-o", "LocalCommand=id"], ["-o", "PermitLocalCommand yes"],
                                    ["-F", "/tmp/cfg"], ["-oProxyJump=evil"], ["-p", "-oProxyCommand=x"]])
def test_profile_ssh_options_that_run_code_are_refused(tmp_path, option):
    from edgekd.profiles import ProfileError, load_profile_file

    with pytest.raises(ProfileError, match="ssh_options"):
        load_profile_file(_profile_with(tmp_path, ssh_options=option))


def test_profile_safe_ssh_options_are_accepted(tmp_path):
    from edgekd.profiles import load_profile_file

    options = ["-i", "/k/id", "-o", "UserKnownHostsFile=/k/known", "-oStrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes",
               "-p", "2222", "-oServerAliveInterval 5"]
    assert load_profile_file(_profile_with(tmp_path, ssh_options=options)).connection.ssh_options == tuple(options)


# --- messages -----------------------------------------------------------------------------------

class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refusal_never_repeats_torchs_advice_to_turn_the_protection_off(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _Exploit()}, f)
    assert main(["eval", str(path), "--arch", "unet_tiny", "--data", str(tmp_path)]) == 2
    line = _one_error_line(capsys)
    assert "refused" in line
    assert not any(bad in line for bad in ("weights_only", "Re-running", "will likely succeed", "add_safe_globals"))


def test_malformed_yaml_profile_is_one_line_with_file_line_and_column(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: broken\nreal_time:\n  target_fps: [30\n  latency_budget_ms: 33\n")
    from edgekd.profiles import ProfileError, load_profile_file

    with pytest.raises(ProfileError) as info:
        load_profile_file(path)
    message = str(info.value)
    assert "\n" not in message and f"{path}:4:" in message and "<unicode string>" not in message


def test_malformed_dataset_yaml_is_one_line(synthetic_root, tmp_path):
    from edgekd.data import open_dataset
    from edgekd.data.info import DataError

    root = tmp_path / "ds"
    shutil.copytree(synthetic_root, root)
    (root / "dataset.yaml").write_text("class_names: [a, b\nignore_index: 3\n")
    with pytest.raises(DataError) as info:
        open_dataset(root, "val")
    assert "\n" not in str(info.value) and f"{root / 'dataset.yaml'}:2:" in str(info.value)


def test_worker_error_message_is_the_workers_one_line():
    from edgekd.cli import error_message
    from edgekd.data.info import DataError

    text = ("Caught DataError in DataLoader worker process 1.\nOriginal Traceback (most recent call last):\n"
            '  File "x.py", line 3, in f\n    raise DataError(...)\n'
            "edgekd.data.info.DataError: image /d/images/bad.png cannot be decoded; re-copy or delete it\n")
    assert error_message(DataError(text)) == "image /d/images/bad.png cannot be decoded; re-copy or delete it (in DataLoader worker 1)"


# --- checkpoints that are not what they claim ---------------------------------------------------

def _broken_checkpoints(tmp_path: Path) -> dict[str, Path]:
    good = _checkpoint(tmp_path / "good.safetensors")
    raw = good.read_bytes()
    files = {"truncated": tmp_path / "truncated.safetensors", "empty": tmp_path / "empty.safetensors",
             "renamed": tmp_path / "renamed.safetensors"}
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["empty"].write_bytes(b"")
    with open(files["renamed"], "wb") as f:
        pickle.dump({"model": _Exploit()}, f)
    return files


@pytest.mark.parametrize("kind, command, message", [
    ("truncated", "eval", "is truncated: .* bytes, its header describes"),
    ("empty", "export", "is an empty file"),
    ("renamed", "doctor", "is a pickle file named .safetensors"),
    ("truncated", "distill", "is truncated"),
])
def test_broken_checkpoint_files_are_one_line_errors(tmp_path, synthetic_root, capsys, kind, command, message):
    import re

    path = _broken_checkpoints(tmp_path)[kind]
    argv = {"eval": ["eval", str(path), "--data", str(synthetic_root)],
            "export": ["export", str(path), "--backend", "torch", "--precision", "fp32", "--out", str(tmp_path / "a")],
            "doctor": ["doctor", str(path)],
            "distill": ["distill", "--teacher", str(path), "--student", "unet_tiny", "--data", str(synthetic_root),
                        "--out", str(tmp_path / "s.safetensors")]}[command]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"edgekd {command}: error: checkpoint {path}") and re.search(message, line), line
    assert not (tmp_path / "a").exists() and not (tmp_path / "s.safetensors").exists()


def test_train_resume_refuses_a_code_running_train_state(tmp_path, synthetic_root, capsys):
    from edgekd.training.loop import train_state_path

    out = _checkpoint(tmp_path / "resume.safetensors")
    marker = tmp_path / "PWNED"

    class Touch:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with open(train_state_path(out), "wb") as f:
        pickle.dump({"epoch": 1, "model": Touch()}, f)
    rc = main(["train", "--arch", "unet_tiny", "--data", str(synthetic_root), "--out", str(out), "--resume", "--epochs", "2",
               "--batch-size", "2", "--crop-size", "48x64", "--max-steps-per-epoch", "1", "--no-progress"])
    assert rc == 2
    line = _one_error_line(capsys)
    assert "train state" in line and "refused" in line and "weights_only" not in line, line
    assert not marker.exists()


def test_train_out_onto_an_existing_checkpoint_needs_force(tmp_path, synthetic_root, capsys):
    out = _checkpoint(tmp_path / "good.safetensors")
    before = out.read_bytes()
    assert main(["train", "--arch", "unet_tiny", "--data", str(synthetic_root), "--out", str(out), "--epochs", "1"]) == 2
    assert "exists; pass --force" in _one_error_line(capsys) and out.read_bytes() == before


# --- results folder: read-only, disk full -------------------------------------------------------

def _mount_tmpfs(folder: Path, options: str) -> bool:
    """A real small/read-only file system (root only); False where mounting is not allowed."""
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    return os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                                capture_output=True).returncode == 0


def _umount(folder: Path) -> None:
    import subprocess

    subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.fixture()
def read_only_folder(tmp_path):
    """A folder this process cannot write: a read-only tmpfs as root (chmod does not stop root), else mode 500."""
    folder = tmp_path / "ro"
    if _mount_tmpfs(folder, "ro,size=64k"):
        yield folder
        _umount(folder)
        return
    if os.geteuid() == 0:
        pytest.skip("root without mount rights: no way to make a folder read-only for this process")
    folder.chmod(0o500)
    yield folder
    folder.chmod(0o700)


def test_read_only_results_folder_is_refused_before_any_cell(tmp_path, read_only_folder, monkeypatch, capsys):
    import edgekd.bench.runner as runner

    artifact = _torch_artifact(tmp_path, _checkpoint(tmp_path / "m.safetensors"))
    ran = []
    monkeypatch.setattr(runner.LocalTarget, "run_cell", lambda *a, **k: ran.append(a), raising=False)
    assert main(["bench", str(artifact), "--device", "host", "--out", str(read_only_folder / "results")]) == 2
    line = _one_error_line(capsys)
    assert "is not writable" in line and "Read-only file system" in line or "Permission denied" in line, line
    assert ran == []


_APPEND_CHILD = """
import json, resource, sys
from edgekd.results import ResultStore, make_record
from edgekd.errors import EdgekdError
limit = int(sys.argv[2])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
row = make_record(run_id="r", timestamp="2026-01-01T00:00:00+00:00", cell_key="k2", device={"name": "host"},
                  candidate={"label": "m/torch-fp32", "arch": "unet_tiny"}, backend={"name": "torch"},
                  precision_requested="fp32", status="failed", error="x" * 3000)
try:
    ResultStore(sys.argv[1]).append(row)
except EdgekdError as err:
    print(err, file=sys.stderr)
    sys.exit(2)
"""


def _first_row(path: Path) -> bytes:
    from edgekd.results import ResultStore, make_record

    ResultStore(path).append(make_record(
        run_id="r", timestamp="2026-01-01T00:00:00+00:00", cell_key="k1", device={"name": "host"},
        candidate={"label": "m/torch-fp32", "arch": "unet_tiny"}, backend={"name": "torch"}, precision_requested="fp32",
        status="failed", error="first"))
    return path.read_bytes()


def _append_in_child(path: Path, fsize_limit: int):
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.run([sys.executable, "-c", _APPEND_CHILD, str(path), str(fsize_limit)], capture_output=True, text=True,
                          env=env, timeout=120)


def test_append_past_the_file_size_limit_leaves_the_file_as_it_was(tmp_path):
    """RLIMIT_FSIZE (``ulimit -f``): the kernel writes up to the limit, then fails with EFBIG — the real write path."""
    path = tmp_path / "host" / "r.jsonl"
    before = _first_row(path)
    proc = _append_in_child(path, len(before) + 1000)  # room for a third of the 3 kB row: a short write, then EFBIG
    assert proc.returncode == 2, proc.stderr
    assert "File too large" in proc.stderr and "the file is unchanged" in proc.stderr and "bytes" in proc.stderr
    assert path.read_bytes() == before


def test_append_on_a_full_disk_leaves_the_file_as_it_was_and_says_the_space(tmp_path):
    """A real full file system: a 16 kB tmpfs (root only; skipped elsewhere — the EFBIG test covers the same path)."""
    mnt = tmp_path / "small"
    if not _mount_tmpfs(mnt, "size=16k"):
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        path = mnt / "host" / "r.jsonl"
        before = _first_row(path)
        with open(mnt / "filler", "wb", buffering=0) as filler:  # take every free page: the 3 kB row does not fit in the file's
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        proc = _append_in_child(path, 0)
        assert proc.returncode == 2, proc.stderr
        assert "No space left on device" in proc.stderr and "bytes are free there" in proc.stderr
        assert path.read_bytes() == before
    finally:
        _umount(mnt)


def test_failed_first_append_leaves_no_file(tmp_path):
    path = tmp_path / "host" / "new.jsonl"
    path.parent.mkdir(parents=True)
    proc = _append_in_child(path, 100)
    assert proc.returncode == 2 and "File too large" in proc.stderr, proc.stderr
    assert not path.exists()


# --- DataLoader workers -------------------------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_bad_image_is_the_same_one_line_with_and_without_workers(tmp_path, synthetic_root, capsys, workers):
    root = tmp_path / "bad"
    shutil.copytree(synthetic_root, root)
    for image in sorted((root / "images").glob("train_*.png")):
        image.write_bytes(b"not a png")  # every train image: whichever a worker reads first is bad
    argv = ["train", "--arch", "unet_tiny", "--data", str(root), "--out", str(tmp_path / "w.safetensors"), "--epochs", "1",
            "--batch-size", "2", "--crop-size", "48x64", "--workers", str(workers), "--no-progress"]
    if workers:
        # In a child process: DataLoader workers leave torch's SIGCHLD handler installed in the process that
        # started them, and in the test process it later fires on other tests' children (segfault seen).
        done = subprocess.run([sys.executable, "-m", "edgekd", *argv], capture_output=True, text=True, timeout=300)
        rc, err = done.returncode, [line for line in done.stderr.strip().splitlines() if line.strip()]
        assert len(err) == 1, done.stderr
        line = err[0]
    else:
        from edgekd.core.subnormal import denormals_flushed

        rc = main(argv)
        line = _one_error_line(capsys)
        # the epoch that raised had switched flush-to-zero on: it must not outlive the run (it once
        # made a later test's subnormal weights read as zeros)
        assert not denormals_flushed()
    assert rc == 2
    assert "is not a readable image (9 bytes); replace or remove it" in line, line
    assert "Traceback" not in line and (("in DataLoader worker" in line) == (workers > 0)), line


# --- unexpected exceptions ----------------------------------------------------------------------

def test_unexpected_exception_is_one_line_naming_the_trace_file(tmp_path, monkeypatch, capsys):
    import edgekd.cli.models as models

    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("EDGEKD_DEBUG", raising=False)
    monkeypatch.setattr(models, "run", lambda args: 1 / 0)
    assert main(["models"]) == 1
    line = _one_error_line(capsys)
    assert "internal error" in line and "ZeroDivisionError: division by zero" in line and "--debug" in line, line
    trace = Path(line.split("full trace in ", 1)[1].split(";", 1)[0])
    assert trace.parent == tmp_path / "cache" / "crashes"
    assert "Traceback (most recent call last)" in trace.read_text() and "1 / 0" in trace.read_text()


@pytest.mark.parametrize("argv", [["--debug", "models"], ["models", "--debug"]])
def test_debug_shows_the_trace_of_an_unexpected_exception(monkeypatch, capsys, argv):
    import edgekd.cli.models as models

    monkeypatch.setattr(models, "run", lambda args: 1 / 0)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last)") and "ZeroDivisionError" in err.splitlines()[-1]


# --- kept cases the table runs too ---------------------------------------------------------------

@pytest.mark.parametrize("command", ["eval", "export", "doctor", "distill --teacher", "distill --init"])
def test_code_running_pickle_is_refused_by_every_command(tmp_path, synthetic_root, capsys, command):
    marker = tmp_path / "PWNED"

    class Touch:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model": Touch()}, f)
    student = ["--student", "unet_tiny", "--data", str(synthetic_root), "--out", str(tmp_path / "s.safetensors"), "--epochs", "1"]
    argv = {"eval": ["eval", str(evil), "--arch", "unet_tiny", "--data", str(synthetic_root)],
            "export": ["export", str(evil), "--arch", "unet_tiny", "--backend", "torch", "--out", str(tmp_path / "a")],
            "doctor": ["doctor", str(evil), "--arch", "unet_tiny"],
            "distill --teacher": ["distill", "--teacher", str(evil), "--teacher-arch", "unet_tiny", *student],
            "distill --init": ["distill", "--init", str(evil), "--init-arch", "unet_tiny", *student]}[command]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    assert f"checkpoint {evil} refused: it is a pickle that would run code" in line and "weights_only" not in line, line
    assert not marker.exists()


def test_shell_characters_in_names_are_inert(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    name = f"x;touch {marker}$(touch {marker})"
    assert main(["bench", str(tmp_path), "--device", name]) == 2
    assert "unknown device profile" in _one_error_line(capsys)
    ckpt = _checkpoint(tmp_path / f"x;touch {marker}.safetensors")
    assert main(["export", str(ckpt), "--backend", "torch", "--precision", "fp32", "--parity-images", "0",
                 "--out", str(tmp_path / "a")]) == 0
    assert not marker.exists() and (tmp_path / "a" / ckpt.stem / "torch-fp32" / "manifest.json").is_file()


def test_resume_of_an_unknown_run_names_the_latest(tmp_path, capsys):
    artifact = _torch_artifact(tmp_path, _checkpoint(tmp_path / "m.safetensors"))
    (tmp_path / "res" / "host").mkdir(parents=True)
    (tmp_path / "res" / "host" / "20260101T000000Z-abcdef.jsonl").write_text("")
    assert main(["bench", str(artifact), "--device", "host", "--resume", "nosuchrun", "--out", str(tmp_path / "res")]) == 2
    assert "--resume nosuchrun: no such run for device 'host'" in (line := _one_error_line(capsys)) and "20260101T000000Z-abcdef" in line


def test_ssh_to_an_unknown_host_name_is_one_line(tmp_path, capsys):
    import shutil as sh

    if sh.which("ssh") is None:
        pytest.skip("no ssh client")
    artifact = _torch_artifact(tmp_path, _checkpoint(tmp_path / "m.safetensors"))
    profile = _profile_with(tmp_path)
    doc = yaml.safe_load(profile.read_text())
    doc["connection"]["host"] = "user@nosuchhost.invalid"
    profile.write_text(yaml.safe_dump(doc))
    assert main(["bench", str(artifact), "--device", str(profile), "--out", str(tmp_path / "res")]) == 2
    assert "cannot reach ssh user@nosuchhost.invalid" in _one_error_line(capsys)


@pytest.mark.slow
def test_kill_9_during_export_then_bench_and_reexport(tmp_path, synthetic_root):
    """A real kill -9 mid-export: bench takes none of what it left, and the next export cleans it."""
    import signal
    import subprocess
    import sys
    import time

    from edgekd.bench.plan import discover_artifacts, plan_cells
    from edgekd.profiles import load_profile

    ckpt = _checkpoint(tmp_path / "good.safetensors")
    out = tmp_path / "a"
    argv = [sys.executable, "-m", "edgekd", "export", str(ckpt), "--backend", "onnxruntime,torch", "--precision", "fp32",
            "--data", str(synthetic_root), "--parity-images", "2", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    hidden = lambda: sorted(p.name for p in (out / "good").glob(".*")) if (out / "good").is_dir() else []  # noqa: E731
    deadline = time.monotonic() + 120
    while not any(n.endswith(".tmp") for n in hidden()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = hidden()
    assert any(n.endswith(".tmp") for n in left), "the export finished before it could be killed"
    try:
        cells, _ = plan_cells(load_profile("host"), discover_artifacts([out]))
    except EdgekdError as err:  # nothing finished: bench finds no artifact at all (it never takes a .tmp)
        assert "no manifest.json in or below" in str(err)
        cells = []
    assert all(not c.artifact_dir.name.startswith(".") for c in cells)  # never a temporary
    for cell in cells:  # what bench takes is whole
        assert json.loads((cell.artifact_dir / "manifest.json").read_text())["complete"] is True
    assert subprocess.run(argv + ["--force"], env=env, capture_output=True).returncode == 0
    assert hidden() == []
    cells, _ = plan_cells(load_profile("host"), discover_artifacts([out]))
    assert sorted(c.artifact_dir.name for c in cells) == ["onnxruntime-fp32", "torch-fp32"]


def test_every_table_case_names_tests_that_exist():
    """tools/hardening_table.py: each case names the tests that check it here, and they exist."""
    import ast
    import importlib.util
    import sys

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("hardening_table", repo / "tools" / "hardening_table.py")
    table = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("hardening_table", table)  # dataclasses look their module up while the class is made
    spec.loader.exec_module(table)
    names = {}
    for case in table.CASES:
        assert case.tests, case.name
        for node in case.tests:
            path, func = node.split("::")
            if path not in names:
                names[path] = {n.name for n in ast.walk(ast.parse((repo / path).read_text())) if isinstance(n, ast.FunctionDef)}
            assert func in names[path], f"{case.name}: {node} does not exist"
    assert len({c.name for c in table.CASES}) == len(table.CASES)
    kinds = [c.kind for c in table.CASES]
    assert set(kinds) <= {"kept", "fixed", "reconstructed"} and kinds.count("kept") + kinds.count("reconstructed") >= 28
