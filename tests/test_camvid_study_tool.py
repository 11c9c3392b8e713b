"""tools/camvid_study.py: its tables and pick, from committed bench rows (no CamVid or training needed)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from conftest import load_tool as load_conftest_tool

REPO = Path(__file__).resolve().parents[1]
RUN_ID = "20261122T011604Z-28853e"  # committed: LR-ASPP small without KD and with DIST, on host


def load_tool():
    return load_conftest_tool("camvid_study")


def test_tables_and_pick_from_real_rows(tmp_path) -> None:
    tool = load_tool()
    runs = [{"student": "lraspp_mobilenetv3_small", "method": m, "val_miou": v, "val_boundary_f": b, "params": 1076414}
            for m, v, b in (("baseline", 0.38548, 0.3468), ("dist", 0.45552, 0.3966))]
    (tmp_path / "summary.json").write_text(json.dumps({"runs": runs}))
    args = argparse.Namespace(out=tmp_path, students="lraspp_mobilenetv3_small", methods="baseline,dist", only=None,
                              export=tool.EXPORT_TARGETS, results=REPO / "bench_results", run_id=RUN_ID)
    tool.write_table(args)
    text = (tmp_path / "study.md").read_text()
    assert "| lraspp_mobilenetv3_small | 1.08 M | 38.5 | 45.6 (+7.0) |" in text
    # FP32 and INT8 through each runtime on all 101 val images (from the rows); INT8's drop is against the same runtime's FP32
    assert "| lraspp_mobilenetv3_small | dist | 45.6 | +7.0 | 39.7 | — | — | 45.6 | 45.0 (-0.59) | 45.4 | 45.4 (+0.09) |" in text
    assert "| lraspp_mobilenetv3_small | coreml fp16 | — | 2 | unavailable: Core ML prediction needs macOS" in text
    # DIST through OpenVINO fp16 (45.36), fp32 (45.36) and int8 (45.44) tie within 0.1 points: the fastest wins
    assert "pick lraspp_mobilenetv3_small-dist openvino-fp16 — the fastest, of the 3 within 0.1 mIoU points" in text
    assert "not exported" in text  # no artifacts under this OUT: the parity table says so rather than inventing


def test_only_runs_are_student_method_pairs() -> None:
    tool = load_tool()
    args = argparse.Namespace(only="fast_scnn:dist,unet_tiny:baseline", students="x", methods="y")
    assert tool.study_runs(args) == [("fast_scnn", "dist"), ("unet_tiny", "baseline")]
    args.only = None
    assert tool.study_runs(argparse.Namespace(only=None, students="a,b", methods="m,n")) == [
        ("a", "m"), ("a", "n"), ("b", "m"), ("b", "n")]
