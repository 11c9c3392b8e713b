"""Terminal tables in an 80-column pipe: no line too wide, no word split, long text as footnotes."""
from __future__ import annotations

import io
import re

import pytest
from rich.cells import cell_len
from rich.console import Console

from edgekd.core.tables import NUMBER, TEXT, Col, FitTable, Footnoted, output_width

REASON = "openvino not installed: pip install 'edgekd[openvino]'"


def render(renderable, width: int = 80) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()


def tokens(text: str) -> set[str]:
    """Whitespace- and rule-separated pieces: a word split over two lines is not among them."""
    return set(re.split(r"[\s│┃║|]+", text))


def flat(text: str) -> str:
    return " ".join(text.split())


def assert_fits(out: str, width: int = 80) -> None:
    widest = max(cell_len(line) for line in out.splitlines())
    assert widest <= width, f"a line is {widest} columns wide:\n{out}"


def wide_table() -> FitTable:
    cols = [Col("candidate"), Col("runtime"), Col("input", NUMBER), Col("params", NUMBER), Col("MACs", NUMBER),
            Col("mIoU %", NUMBER), Col("Δ no-KD", NUMBER), Col("p50 ms", NUMBER), Col("p50 95% CI", NUMBER),
            Col("p50 not distinguishable from"), Col("p99 ms", NUMBER), Col("FPS", NUMBER), Col("peak MB", NUMBER),
            Col("status"), Col("verdict"), Col("note", TEXT)]
    table = FitTable(cols, title="host: measured — budget ≥ 30 FPS, p99 ≤ 33.3 ms, peak ≤ 1024 MB", keys=2)
    table.add_row("lraspp_mobilenetv3_large_kd", "onnxruntime-fp32", "360x480", "3.22M", "2.05G", "64.12", "+2.90",
                  "18.25", "18.1–18.4", "fastscnn_kd onnxruntime-fp32", "24.75", "1234.5", "412", "ok", "meets",
                  "a much longer note that says something free-form about this row and more")
    table.add_row("fastscnn_kd", "openvino-int8", "360x480", "—", "—", "—", "—", "—", "—", "", "—", "—", "—",
                  Footnoted.of("unavailable", f"fastscnn_kd openvino-int8: {REASON}"),
                  Footnoted.of("misses", "fastscnn_kd openvino-int8: misses: p99 45.0 ms > 33.3 ms; FPS 22.1 < 30"), "")
    return table


def test_wide_table_fits_80_columns_without_splitting_words_or_numbers():
    out = render(wide_table())
    assert_fits(out)
    words = tokens(out)
    for word in ("unavailable", "lraspp_mobilenetv3_large_kd", "onnxruntime-fp32", "openvino-int8", "misses",
                 "fastscnn_kd", "distinguishable"):
        assert word in words, f"{word!r} is split or missing:\n{out}"
    for number in ("1234.5", "18.1–18.4", "3.22M", "2.05G", "+2.90", "412", "360x480"):  # never wrapped
        assert number in words, number
    # footnotes are numbered in row order: the first row's note is [1]
    assert "unavailable [2]" in out and "misses [3]" in out and "│ [1]" in out
    assert f"[2] fastscnn_kd openvino-int8: {REASON}" in flat(out)  # the footnote carries the full reason
    assert "[1] a much longer note that says something free-form about this row and more" in flat(out)
    assert "pip install" not in out.split("\n[1] ")[0]  # ... and no table cell does


def test_a_table_that_cannot_fit_is_split_repeating_its_key_columns():
    out = render(wide_table())
    parts = [line for line in out.splitlines() if line.startswith("host: measured")]
    assert len(parts) >= 2 and parts[0].endswith(f"(1/{len(parts)})")
    assert out.count("lraspp_mobilenetv3_large_kd") == len(parts)  # the key column in every part
    single = render(wide_table(), width=400)
    assert "(1/" not in single and single.count("lraspp_mobilenetv3_large_kd") == 1
    assert max(cell_len(line) for line in single.splitlines()) < 400  # as wide as needed, no wider


def test_output_width_is_columns_or_80_off_a_terminal(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_width(Console(file=io.StringIO(), width=250)) == 80
    monkeypatch.setenv("COLUMNS", "132")
    assert output_width(Console(file=io.StringIO(), width=250)) == 132


@pytest.fixture
def results(tmp_path):
    from test_compare_fixtures import write_results

    return write_results(tmp_path)


def test_compare_in_a_pipe_is_80_columns_with_reasons_as_footnotes(results, capsys, monkeypatch):
    from edgekd.cli import main

    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["compare", str(results)]) == 0  # pytest's stdout is not a terminal: a pipe
    out = capsys.readouterr().out
    assert_fits(out)
    words = tokens(out)
    assert {"unavailable", "failed", "misses", "onnxruntime-fp32", "openvino-int8", "950.00M"} <= words
    text = flat(out)
    assert re.search(r"unavailable \[\d+\]", out)
    assert "lraspp-kd coreml-fp16: Core ML prediction is only supported on macOS" in text
    assert "fastscnn-kd openvino-fp32: RuntimeError: Exception from src/inference: fixture failure" in text


def test_bench_summary_keeps_the_whole_error_in_a_footnote():
    from edgekd.bench.display import results_table
    from edgekd.results import make_record

    error = ("OpenVINO is not installed; pip install 'edgekd[openvino]' — and this sentence makes the first line "
             "of the error longer than the sixty characters the old cell kept")
    record = make_record(status="unavailable", error=error, candidate={"label": "espnet_p2q8_kd"}, backend={"name": "openvino"})
    out = render(results_table([record], "host · run 20250101T000000Z-aaaaaa"))
    assert_fits(out)
    assert "unavailable" in tokens(out) and "espnet_p2q8_kd" in tokens(out)
    assert f"[1] espnet_p2q8_kd: {error}" in flat(out)


def test_doctor_findings_fit_80_columns_without_splitting_words():
    from edgekd.doctor.findings import DoctorReport, Finding
    from edgekd.doctor.report import render as render_report

    finding = Finding(code="dynamic-spatial", severity="warning", device="iphone-15-pro-max-long-name",
                      what="the graph has range-flexible spatial dimensions",
                      why_it_matters="with range-flexible shapes Core ML runs on the Neural Engine only at the default "
                                     "shape; other shapes run on the GPU or CPU",
                      fix="export at the one size the app feeds: edgekd export CKPT --backend coreml --input-size 360x480")
    report = DoctorReport(target="student.safetensors", kind="checkpoint", devices=["iphone-15-pro-max-long-name"],
                          findings=[finding], facts={})
    console = Console(file=io.StringIO(), width=80, color_system=None)
    render_report(report, console)
    out = console.file.getvalue()
    assert_fits(out)
    assert {"range-flexible", "iphone-15-pro-max-long-name", "--input-size", "360x480"} <= tokens(out)


def test_eval_and_estimate_print_within_80_columns(capsys, monkeypatch, tmp_path):
    import onnx

    from edgekd.cli import main
    from edgekd.cli.eval import _print
    from test_estimate import conv_relu_model

    monkeypatch.delenv("COLUMNS", raising=False)
    result = {"images": 4, "input_size": [64, 96], "miou": 0.5, "pixel_accuracy": 0.9, "boundary_f": 0.4,
              "boundary_tolerance_px": 2, "images_per_s": 3.2,
              "per_class_iou": {"a_long_class_name_like_pedestrian_crossing": 0.5, "sky": None}}
    _print([result, {**result, "input_size": [360, 480]}], "lraspp_mobilenetv3_large", "camvid", "val")
    out = capsys.readouterr().out
    assert_fits(out)
    assert {"a_long_class_name_like_pedestrian_crossing", "50.00", "–"} <= tokens(out)
    path = tmp_path / "conv.onnx"
    onnx.save(conv_relu_model(False), path)
    assert main(["estimate", str(path), "--device", "jetson-orin-nano"]) == 0
    out = capsys.readouterr().out
    assert_fits(out)
    assert "Conv" in tokens(out) and "memory" in tokens(out)
