"""tools/student_study.py's README table: one line per model and input size, each runtime's p50 / FPS
from the one bench run, PyTorch mIoU from the eval stage (no training or benching here)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from conftest import load_tool as load_conftest_tool

REPO = Path(__file__).resolve().parents[1]


def load_tool():
    return load_conftest_tool("student_study")


def _row(stem: str, size: list[int], runtime: str, p50: float, fps: float, status: str = "ok") -> dict:
    backend, precision = runtime.split("-")
    return {"candidate": {"artifact_dir": f"/a/{stem}/{runtime}", "params": 494258, "macs": 2.22e9, "label": stem},
            "input_size": size, "backend": {"name": backend}, "precision_requested": precision, "status": status,
            "latency_ms": {"p50": p50}, "fps_sync": fps}


def test_summary_has_a_line_per_model_and_size_with_each_runtimes_speed(tmp_path):
    tool = load_tool()
    # the reference file absent (as in CI): MACs come from the bench rows; with a checkpoint, from its own network
    tool.REFERENCES = {"cgnet_m3n21_camvid_trainval": (tmp_path / "cgnet_m3n21_camvid_trainval.pth", "cgnet_m3n21", "360x480,240x320")}
    args = argparse.Namespace(out=tmp_path, runs=[], results=tmp_path / "results", device="host", run_id="r")
    rows = [_row("cgnet_m3n21_camvid_trainval", [240, 320], "onnxruntime-fp32", 36.1, 27.3),
            _row("cgnet_m3n21_camvid_trainval", [360, 480], "openvino-fp32", 36.0, 26.7),
            _row("cgnet_m3n21_camvid_trainval", [360, 480], "onnxruntime-fp32", 81.6, 12.2),
            _row("cgnet_m3n21_camvid_trainval", [360, 480], "openvino-int8", 1.0, 1.0, status="unavailable")]
    (tmp_path / "results" / "host").mkdir(parents=True)
    (tmp_path / "results" / "host" / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "eval").mkdir()
    for split, scores in (("val", (0.857, 0.812)), ("train_0006R0", (0.812, 0.765))):
        (tmp_path / "eval" / f"cgnet_m3n21_camvid_trainval-{split}.json").write_text(json.dumps(
            [{"input_size": [360, 480], "miou": scores[0]}, {"input_size": [240, 320], "miou": scores[1]}]))
    lines = tool.summary_lines(args)
    assert lines[0].startswith("| model | input | val mIoU | 0006R0 mIoU | params | GMACs | onnxruntime-fp32 p50 ms / FPS")
    assert lines[2] == "| cgnet_m3n21_camvid_trainval | 360x480 | 85.7 | 81.2 | 0.49 M | 2.22 | 81.6 / 12 | — | 36.0 / 27 | — |"
    assert lines[3] == "| cgnet_m3n21_camvid_trainval | 240x320 | 81.2 | 76.5 | 0.49 M | 2.22 | 36.1 / 27 | — | — | — |"
    assert len(lines) == 4  # the unavailable cell is not a speed


def test_export_stage_finds_artifacts_made_from_an_older_checkpoint(tmp_path):
    """An artifact exported from an epoch saved before training ended must not reach the bench."""
    from edgekd.checkpoint import sha256_file

    tool = load_tool()
    ckpt = tmp_path / "espnet_dist.safetensors"
    ckpt.write_bytes(b"epoch 18")
    root = tmp_path / "artifacts" / "espnet_dist"
    for folder, source in (("onnxruntime-fp32", sha256_file(ckpt)), ("openvino-fp32", "0" * 64)):
        (root / folder).mkdir(parents=True)
        (root / folder / "manifest.json").write_text(json.dumps({"source": {"sha256": source}}))
    assert tool.stale_artifacts(root, ckpt) == [root / "openvino-fp32"]
    ckpt.write_bytes(b"epoch 20: the final weights")
    assert tool.stale_artifacts(root, ckpt) == [root / "onnxruntime-fp32", root / "openvino-fp32"]
