"""Android phones over adb: result-line parsing, the commands sent, and ``unavailable`` rows without a device."""
from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from edgekd.bench.adb import AdbError, AdbTarget, parse_executorch, parse_litert, tool_command
from edgekd.bench.runner import BenchOptions, run_bench
from edgekd.profiles import ProfileError, load_profile, load_profile_file
from edgekd.results.schema import validate_record

PHONES = ("pixel-9", "galaxy-s24-ultra")
# Lines in the format LiteRT's benchmark_model prints (values from its Android documentation's example run).
LITERT_OUTPUT = """\
INFO: Initialized TensorFlow Lite runtime.
INFO: The input model file size (MB): 4.27635
INFO: count=10 first=101726 curr=92100 min=91002 max=101726 avg=92755.2 std=3011
INFO: count=50 first=90120 curr=90500 min=89950 max=93310 avg=90865.9 std=712
INFO: Inference timings in us: Init: 5388, First inference: 101726, Warmup (avg): 92755.2, Inference (avg): 90865.9
INFO: Memory footprint delta from the start of the tool (MB): init=7.2 overall=31.5
INFO: Overall peak memory footprint (MB) via periodic monitoring: 40.1
"""
EXECUTORCH_OUTPUT = "I 00:00:04.631 executorch:executor_runner.cpp:250] Model executed successfully 50 time(s) in 4620.312000 ms.\n"


@pytest.mark.parametrize("name", PHONES)
def test_phone_profiles_carry_sourced_cpu_peaks_and_an_adb_connection(name):
    p = load_profile(name)
    assert p.connection.type == "adb" and p.connection.workdir.startswith("/data/local/tmp")
    assert p.backend == "litert" and "executorch" in p.accepted_backends and p.runtime.threads == 4
    hw = p.hardware
    assert hw.peak_fp16_tflops == pytest.approx(2 * hw.peak_fp32_tflops) and hw.peak_int8_tops == pytest.approx(4 * hw.peak_fp32_tflops)
    assert "Cortex-X4" in hw.cpu and "Derived here" in hw.source
    assert p.real_time.latency_budget_ms < 1000 / p.real_time.target_fps


def test_adb_profile_needs_an_absolute_device_workdir(tmp_path):
    raw = yaml.safe_load(Path(load_profile("pixel-9").path).read_text())
    raw["connection"]["workdir"] = "~/edgekd"
    bad = tmp_path / "pixel-9.yaml"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match="connection.workdir.*absolute path on the phone"):
        load_profile_file(bad)
    raw["connection"]["type"] = "usb"
    bad.write_text(yaml.safe_dump(raw))
    with pytest.raises(ProfileError, match=r"connection.type = 'usb'.*local \| ssh \| adb"):
        load_profile_file(bad)


def test_litert_result_lines_parse_to_milliseconds():
    got = parse_litert(LITERT_OUTPUT)
    lat = got["latency_ms"]
    assert lat["mean"] == pytest.approx(90.8659) and lat["n"] == 50  # the last count= line is the timed run
    assert lat["min"] == pytest.approx(89.95) and lat["max"] == pytest.approx(93.31) and lat["std"] == pytest.approx(0.712)
    assert lat["p50"] is None and lat["p99"] is None, "the tool reports no percentiles: none are invented"
    assert got["first_inference_ms"] == pytest.approx(101.726) and got["load_s"] == pytest.approx(0.005388)
    assert got["peak_memory_mb"] == pytest.approx(40.1) and got["fps_sync"] == pytest.approx(1000 / 90.8659)


def test_executorch_result_line_parses_to_a_mean():
    got = parse_executorch(EXECUTORCH_OUTPUT)
    assert got["latency_ms"]["n"] == 50 and got["latency_ms"]["mean"] == pytest.approx(92.40624)


def test_output_without_a_result_line_is_refused_with_its_last_line():
    with pytest.raises(AdbError, match="no 'Inference timings in us' line.*Failed to apply XNNPACK delegate"):
        parse_litert("INFO: Initialized TensorFlow Lite runtime.\nERROR: Failed to apply XNNPACK delegate.\n")
    with pytest.raises(AdbError, match="executor_runner printed no"):
        parse_executorch("E executorch:method.cpp:100] Missing operator: aten::avg_pool2d.out\n")


def test_device_commands_are_the_runtime_tools():
    conn = load_profile("pixel-9").connection
    assert tool_command("litert", conn, "/data/local/tmp/edgekd/m/model.tflite", 4, 50, 10) == (
        "/data/local/tmp/benchmark_model --graph=/data/local/tmp/edgekd/m/model.tflite --use_xnnpack=true "
        "--num_runs=50 --warmup_runs=10 --report_peak_memory_footprint=true --num_threads=4")
    assert tool_command("executorch", conn, "/x/model.pte", None, 20, 10) == \
        "/data/local/tmp/executor_runner --model_path=/x/model.pte --num_executions=20"
    with pytest.raises(Exception, match="litert or executorch"):
        tool_command("openvino", conn, "/x/model.xml", None, 1, 1)


def _artifact(root: Path, backend: str, model_file: str) -> Path:
    d = root / "tiny" / f"{backend}-fp32"
    d.mkdir(parents=True)
    (d / model_file).write_bytes(b"model")
    (d / "manifest.json").write_text(json.dumps({
        "backend": backend, "precision": "fp32", "input_shape": [1, 3, 360, 480], "runtime_file": model_file,
        "normalization": {"mean": [0, 0, 0], "std": [1, 1, 1]}, "source": {"sha256": "ab" * 32}}))
    return d


def test_without_adb_every_cell_is_unavailable_with_the_reason_and_no_figure(tmp_path):
    profile = load_profile("pixel-9")
    missing = replace(profile.connection, adb=str(tmp_path / "no-such-adb"))
    arts = [_artifact(tmp_path / "a", "litert", "model.tflite"), _artifact(tmp_path / "b", "executorch", "model.pte")]
    summary = run_bench(profile, arts, BenchOptions(), tmp_path / "results", target=AdbTarget(missing))
    assert len(summary.written) == 2
    for row in summary.written:
        validate_record(row)
        assert row["status"] == "unavailable" and "no Android device reachable" in row["error"]
        assert "is not installed here" in row["error"] and "platform-tools" in row["error"]
        assert row["latency_ms"] is None and row["fps_sync"] is None and row["budget"] is None
        assert row["device"]["connection"]["type"] == "adb"


def test_a_device_that_is_not_ready_gives_unavailable_rows(tmp_path):
    """A stand-in adb that answers ``get-state`` like a phone whose USB debugging was not accepted."""
    fake = tmp_path / "adb"
    fake.write_text("#!/bin/sh\necho \"$@\" >> \"$(dirname \"$0\")/calls.txt\"\n"
                    "[ \"$3\" = get-state ] && { echo 'error: device unauthorized.' >&2; exit 1; }\nexit 0\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    profile = load_profile("galaxy-s24-ultra")
    target = AdbTarget(replace(profile.connection, adb=str(fake)), serial="R5CX00TEST")
    summary = run_bench(profile, [_artifact(tmp_path / "a", "litert", "model.tflite")], BenchOptions(), tmp_path / "r", target=target)
    (row,) = summary.written
    assert row["status"] == "unavailable" and "device unauthorized" in row["error"]
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls == ["-s R5CX00TEST get-state"], "nothing is pushed or run once the device is known absent"
    assert row["device"]["connection"]["address"] == "adb -s R5CX00TEST"


def test_phone_roofline_estimate_is_labelled_and_uses_the_profile_peak():
    """One 3→8 3×3 conv at 32×32 (450,560 FLOPs by hand) on the Pixel 9's FP32 CPU peak, no bandwidth published."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    from edgekd.estimate.onnx_cost import graph_cost
    from edgekd.estimate.roofline import estimate_cost

    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])
    g = helper.make_graph([conv], "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w"),
                                       numpy_helper.from_array(np.ones(8, np.float32), "b")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    est = estimate_cost(graph_cost(model), load_profile("pixel-9"), "fp32", efficiency=0.5).to_dict()
    assert est["latency_ms"] == pytest.approx(1e3 * 450_560 / (0.285e12 * 0.5), rel=1e-6)
    text = json.dumps(est)
    assert "peak_fp32_tflops" in text and "not known: memory term omitted" in text
