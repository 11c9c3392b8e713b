"""The harness end to end on real exported artifacts: fresh worker processes, durable rows, resume after kill -9."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgekd.bench.runner import BenchOptions, run_bench
from edgekd.cli import main
from edgekd.profiles import load_profile
from edgekd.results.schema import RECORD_KEYS, validate_record
from edgekd.results.store import read_records

REPO = Path(__file__).resolve().parents[1]
FAST = dict(duration_s=0.3, min_iters=5, warmup_max_s=0.3, e2e_s=0.2, paced_s=0.3, throughput_s=0.2)
CLI_FAST = ["--duration", "0.3", "--min-iters", "5", "--warmup-max", "0.3", "--e2e", "0.2", "--throughput", "0.2"]


def export_tiny(root: Path, backends: str, precisions: str = "fp32") -> list[Path]:
    """A real checkpoint of a tiny zoo student, exported at 32×32 through edgekd's own export pipeline."""
    import torch

    from edgekd.checkpoint import CheckpointMeta, save_checkpoint
    from edgekd.data import SYNTHETIC_CLASSES
    from edgekd.export import export_checkpoint
    from edgekd.models import create_model

    torch.manual_seed(0)
    ckpt = root / "tiny_student.safetensors"
    if not ckpt.exists():
        model = create_model("unet_tiny", num_classes=len(SYNTHETIC_CLASSES)).eval()
        norm = model.normalization
        meta = CheckpointMeta(arch="unet_tiny", num_classes=len(SYNTHETIC_CLASSES), class_names=list(SYNTHETIC_CLASSES),
                              ignore_index=255, input_size=[32, 32], mean=list(norm.mean), std=list(norm.std),
                              trained_with={"method": "kd-test", "losses": {"kl": 1.0}})
        save_checkpoint(ckpt, model, meta)
    return export_checkpoint(ckpt, backends=backends, precisions=precisions, out_dir=root / "artifacts",
                             input_size=(32, 32), exporter="torchscript", parity_images=0, force=True)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    dirs = export_tiny(tmp_path_factory.mktemp("bench"), "onnxruntime,openvino,torch,tensorrt")
    return {d.name: d for d in dirs}


def host_profile():
    return load_profile("host").with_threads(1)


def test_end_to_end_cell_has_every_field(artifacts, synthetic_root, tmp_path) -> None:
    opts = BenchOptions(**FAST, sustained_s=0.6, window_s=0.3, data=synthetic_root, accuracy_images=3)
    summary = run_bench(host_profile(), [artifacts["onnxruntime-fp32"]], opts, tmp_path)
    rows, warnings = read_records(summary.path)
    assert len(rows) == 1 and not warnings and summary.path.parent.name == "host"
    r = rows[0]
    validate_record(r)
    assert set(r) == set(RECORD_KEYS) and r["status"] == "ok" and r["error"] is None
    assert r["device"]["name"] == "host" and len(r["device"]["profile_sha256"]) == 64
    assert r["host"]["cores_logical"] == os.cpu_count() and r["host"]["load_avg_start"] is not None
    assert r["edgekd"]["version"] and "git_commit" in r["edgekd"]
    cand = r["candidate"]
    assert cand["arch"] == "unet_tiny" and cand["params"] > 0 and cand["macs"] > 0
    assert len(cand["checkpoint_sha256"]) == 64 and cand["distillation_method"] == "kd-test"
    be = r["backend"]
    assert be["name"] == "onnxruntime" and be["precision_used"] == "fp32" and be["threads"] == 1
    assert be["provider"] == ["CPUExecutionProvider"] and be["version"]
    assert r["precision_requested"] == "fp32" and r["input_size"] == [32, 32] and r["batch"] == 1
    lat = r["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] and r["iterations"] >= 5
    assert r["fps_sync"] == pytest.approx(1000 / lat["mean"]) and r["warmup"]["iterations"] >= 1
    assert r["throughput"]["fps"] is None and r["throughput"]["reason"]
    assert set(r["e2e"]["stages_ms_p50"]) == {"resize", "normalize", "inference", "argmax", "upsample", "overlay"}
    assert r["e2e"]["camera_hw"] == [720, 1280] and r["paced"]["target_fps"] == 30 and r["paced"]["frames_offered"] >= 5
    assert r["load_s"] > 0 and r["first_inference_ms"] > 0 and r["model_mb"] > 0
    mem = r["memory"]
    assert mem["peak_rss_mb"] >= mem["after_load_rss_mb"] > mem["baseline_rss_mb"] > 0
    assert r["peak_memory_mb"] == mem["peak_rss_mb"] < 1000  # no PyTorch in the measured process
    assert r["energy"]["energy_per_frame_mj"] is not None or r["energy"]["reason"]
    assert r["thermal"]["start"] is not None and r["thermal"]["end"] is not None
    sus = r["sustained"]
    assert len(sus["windows"]) == 2 and sus["throttle_ratio"] > 0 and "rss_growth_mb" in sus
    acc = r["accuracy"]
    assert acc["images"] == 3 and 0 <= acc["miou"] <= 1 and acc["per_class_iou"] and acc["boundary_f"] is not None
    assert acc["fp32_reference"]["miou"] is not None  # the torch-fp32 sibling, run once
    assert abs(acc["delta_miou_vs_fp32"]) < 0.02  # same weights through ONNX Runtime
    assert set(r["budget"]) >= {"latency_ok", "fps_ok", "e2e_ok", "memory_ok", "latency_budget_ms"}
    assert summary.path.with_suffix(".reference.json").is_file()


def test_backends_that_cannot_run_here_give_unavailable_rows(artifacts, tmp_path) -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("an NVIDIA GPU is present: TensorRT may run here")
    summary = run_bench(host_profile(), [artifacts["tensorrt-fp32"]], BenchOptions(**FAST), tmp_path)
    (row,) = read_records(summary.path)[0]
    validate_record(row)
    assert row["status"] == "unavailable" and "TensorRT" in row["error"] and row["latency_ms"] is None
    assert row["backend"]["name"] == "tensorrt" and row["host"]["cpu"]


@pytest.mark.slow
@pytest.mark.backend
def test_coreml_is_unavailable_off_macos(tmp_path) -> None:
    if sys.platform == "darwin":
        pytest.skip("Core ML runs on macOS")
    pytest.importorskip("coremltools")
    (art,) = export_tiny(tmp_path, "coreml")
    summary = run_bench(host_profile(), [art], BenchOptions(**FAST), tmp_path / "res")
    (row,) = read_records(summary.path)[0]
    assert row["status"] == "unavailable" and "macOS" in row["error"]


def test_a_failing_cell_is_recorded_and_the_run_goes_on(artifacts, tmp_path) -> None:
    broken = tmp_path / "broken" / "onnxruntime-fp32"
    shutil.copytree(artifacts["onnxruntime-fp32"], broken)
    (broken / "model.onnx").write_bytes(b"not an onnx graph")
    summary = run_bench(host_profile(), [broken, artifacts["openvino-fp32"]], BenchOptions(**FAST), tmp_path / "res")
    rows = {r["backend"]["name"]: r for r in read_records(summary.path)[0]}
    assert rows["onnxruntime"]["status"] == "failed" and rows["onnxruntime"]["error"]
    ov = rows["openvino"]
    assert ov["status"] == "ok" and ov["backend"]["precision_used"]
    assert ov["throughput"]["fps"] > 0 and "THROUGHPUT" in ov["throughput"]["session"]  # pipelined, reported apart


def test_a_hung_cell_times_out(artifacts, tmp_path) -> None:
    opts = BenchOptions(**{**FAST, "duration_s": 30.0, "min_iters": 10**6}, cell_timeout_s=3.0)
    summary = run_bench(host_profile(), [artifacts["onnxruntime-fp32"]], opts, tmp_path)
    (row,) = read_records(summary.path)[0]
    assert row["status"] == "failed" and "timed out" in row["error"]


def test_kill_9_mid_matrix_then_resume_runs_only_missing_cells(artifacts, tmp_path) -> None:
    root = tmp_path / "matrix"  # three cells; the torch one is left out only to keep the test short
    for name in ("onnxruntime-fp32", "openvino-fp32", "tensorrt-fp32"):
        shutil.copytree(artifacts[name], root / name)
    out = tmp_path / "res"
    cmd = [sys.executable, "-m", "edgekd", "bench", "--device", "host", str(root), "--out", str(out), "--threads", "1",
           *CLI_FAST, "--duration", "1.5"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    run_file = None
    while time.monotonic() < deadline and proc.poll() is None:
        files = list((out / "host").glob("*.jsonl")) if (out / "host").exists() else []
        if files and files[0].read_bytes().endswith(b"\n"):  # a complete first row is on disk
            run_file = files[0]
            break
        time.sleep(0.05)
    assert run_file is not None and proc.poll() is None, "the run ended before a row appeared"
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the runner in the middle of the matrix
    proc.wait()
    before = run_file.read_bytes()
    kept = [json.loads(line) for line in before.decode().splitlines()]
    assert 1 <= len(kept) < 3, "the kill must land mid-matrix"
    code = main(["bench", "--device", "host", str(root), "--out", str(out), "--threads", "1", *CLI_FAST, "--resume"])
    rows = [json.loads(line) for line in run_file.read_text().splitlines()]
    assert code == 0, [(r["cell_key"], r["status"], r["error"]) for r in rows]
    after = run_file.read_bytes()
    assert after.startswith(before), "rows written before the kill are untouched"
    rows = [json.loads(line) for line in after.decode().splitlines()]
    keys = [r["cell_key"] for r in rows]
    assert len(rows) == 3 and len(set(keys)) == 3, "every cell exactly once: nothing lost, no duplicates"
    assert {r["run_id"] for r in rows} == {run_file.stem}
    assert main(["bench", "--device", "host", str(root), "--out", str(out), *CLI_FAST, "--resume", run_file.stem]) == 0
    assert run_file.read_bytes() == after  # nothing left to run


def test_cli_errors_are_one_line_with_the_fix(artifacts, tmp_path, capsys) -> None:
    assert main(["bench", "--device", "jetson-orin-mx", str(tmp_path)]) == 2
    assert "Did you mean 'jetson-orin-nx'" in capsys.readouterr().err
    assert main(["bench", "--device", "jetson-orin-nano", str(artifacts["tensorrt-fp32"])]) == 2
    assert "--host user@addr" in capsys.readouterr().err
    assert main(["bench", "--device", "host", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["devices"]) == 0 and "jetson-orin-nano" in capsys.readouterr().out


def test_named_run_id_then_resume_by_that_name(artifacts, tmp_path, capsys) -> None:
    out, cell = tmp_path / "res", str(artifacts["tensorrt-fp32"])  # unavailable here: a row without timing, fast
    assert main(["bench", "--device", "host", cell, "--out", str(out), *CLI_FAST, "--run-id", "study-1"]) == 0
    run_file = out / "host" / "study-1.jsonl"
    assert [r["run_id"] for r in read_records(run_file)[0]] == ["study-1"]
    capsys.readouterr()
    assert main(["bench", "--device", "host", cell, "--out", str(out), *CLI_FAST, "--run-id", "study-1"]) == 2
    assert "pass --resume study-1" in capsys.readouterr().err
    assert main(["bench", "--device", "host", cell, "--out", str(out), "--run-id", "../x"]) == 2
    assert "letters, digits" in capsys.readouterr().err
    before = run_file.read_bytes()
    assert main(["bench", "--device", "host", cell, "--out", str(out), *CLI_FAST, "--resume", "study-1"]) == 0
    assert run_file.read_bytes() == before  # the one cell is already recorded


def test_fp32_reference_comes_from_the_checkpoint_when_no_torch_artifact_is_there(artifacts, synthetic_root, tmp_path,
                                                                                  monkeypatch) -> None:
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    lone = tmp_path / "lone" / "onnxruntime-fp32"  # no torch-fp32 sibling; its checkpoint is still on disk
    shutil.copytree(artifacts["onnxruntime-fp32"], lone)
    opts = BenchOptions(**FAST, data=synthetic_root, accuracy_images=3)
    row = read_records(run_bench(host_profile(), [lone], opts, tmp_path / "res").path)[0][0]
    assert row["accuracy"]["fp32_reference"]["miou"] is not None
    assert abs(row["accuracy"]["delta_miou_vs_fp32"]) < 0.02
    assert list((tmp_path / "cache" / "references").glob("*-32x32/tiny_student/torch-fp32/manifest.json"))
    source = Path(json.loads((lone / "manifest.json").read_text())["source"]["checkpoint"])
    moved = source.rename(source.with_suffix(".moved"))  # the checkpoint is gone: no reference, and the row says why
    try:
        monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache2"))
        row = read_records(run_bench(host_profile(), [lone], opts, tmp_path / "res2").path)[0][0]
        assert row["accuracy"]["delta_miou_vs_fp32"] is None
        assert "export one with --backend torch" in row["accuracy"]["delta_reason"]
    finally:
        moved.rename(source)
