"""edgekd compare: loading, verdicts, Δ vs no-KD, Pareto front, pick, output formats, CLI, plots.

The records are the hand-made fixtures of test_compare_fixtures.py (test data, not results).
"""
from __future__ import annotations

import io
import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest
from test_compare_fixtures import estimate_record, fixture_records, write_results

from edgekd.cli import main
from edgekd.compare import Budget, compare_results, make_plots, pareto_front, pick_best
from edgekd.compare.format import render, to_csv, to_json, to_markdown
from edgekd.compare.load import NUMERIC_COLUMNS
from edgekd.compare.table import check_budget, sort_table, verdict
from edgekd.errors import EdgekdError

BUDGET = Budget(target_fps=30.0, latency_budget_ms=33.3, memory_budget_mb=1024.0)


@pytest.fixture()
def results(tmp_path):
    return write_results(tmp_path)


@pytest.fixture()
def df(results):
    return compare_results([results, estimate_record()])


def _row(df, candidate, backend, precision):
    sel = df[(df.candidate == candidate) & (df.backend == backend) & (df.precision == precision)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def budget_profile(fps: float, latency: float, memory: float, name: str = "host"):
    """A stand-in with a DeviceProfile's ``name`` and ``real_time`` (what pick_best reads)."""
    return SimpleNamespace(name=name, real_time=SimpleNamespace(target_fps=fps, latency_budget_ms=latency,
                                                                memory_budget_mb=memory))


# --- loading and flattening -------------------------------------------------------------------

def test_one_row_per_candidate_backend_precision(df):
    measured = df[df.kind == "measurement"]
    cells = set(zip(measured.candidate, measured.backend, measured.precision))
    assert cells == {("lraspp-sup", "onnxruntime", "fp32"), ("lraspp-kd", "onnxruntime", "fp32"),
                     ("lraspp-kd", "openvino", "int8"), ("fastscnn-kd", "onnxruntime", "fp32"),
                     ("lraspp-kd", "coreml", "fp16"), ("fastscnn-kd", "openvino", "fp32")}
    assert list(df.kind).index("estimate") == len(df) - 1  # estimates sort after every measurement


def test_flattened_fields(df):
    row = _row(df, "lraspp-kd", "openvino", "int8")
    assert (row.arch, row.params, row.macs, row.method) == ("lraspp_mobilenetv3", 1_120_000, 1.91e9, "kd")
    assert row.teacher == "sha256:abababab"
    assert (row.miou, row.delta_miou_vs_fp32, row.fps, row.latency_p99_ms, row.peak_mb) == (0.633, -0.008, 95.0, 13.0, 380)
    assert row.distillation_factor == 5.5 and row.teacher_student_kl == 0.042 and row.probability_correlation == 0.93
    assert row.relative_error == pytest.approx(0.355 / 0.30)
    assert (row.e2e_ms, row.deadline_miss_pct, row.throughput_fps) == (15.9, 1.5, pytest.approx(123.5))
    assert math.isnan(row.energy_mj)  # the fixture has no power sensor: absent, not 0
    assert row.sustained_fps == [[5.0, 96.0], [10.0, 94.0], [15.0, 90.0], [20.0, 88.0]]
    assert _row(df, "fastscnn-kd", "onnxruntime", "fp32").method == "kd+cwd"
    assert _row(df, "lraspp-sup", "onnxruntime", "fp32").method == "supervised"


def test_latest_ok_row_kept_and_later_failure_noted(df):
    row = _row(df, "lraspp-kd", "onnxruntime", "fp32")
    assert row.status == "ok" and row.fps == 51.0
    assert "20250102T000000Z-bbbbbb" in row.note and "worker killed" in row.note


def test_latest_row_wins_when_no_ok_row(tmp_path):
    recs = fixture_records()
    failed = [r for r in recs if r["status"] == "failed" and r["candidate"]["arch"] == "fast_scnn"][0]
    later = {**failed, "timestamp": "2025-02-01T00:00:00Z", "status": "unavailable", "error": "runtime gone"}
    out = compare_results([failed, later])
    assert len(out) == 1 and out.iloc[0].status == "unavailable" and out.iloc[0].reason == "runtime gone"


def test_failed_and_unavailable_rows_never_carry_numbers(df):
    bad = df[df.status != "ok"]
    assert set(bad.status) == {"failed", "unavailable"}
    assert bad[list(NUMERIC_COLUMNS)].isna().all().all()
    assert bad.verdict.isna().all() and bad.reason.notna().all()


def test_a_failed_record_with_figures_is_still_shown_without_them():
    rec = [r for r in fixture_records() if r["status"] == "ok"][0]
    out = compare_results([{**rec, "status": "failed", "error": "crashed after timing"}])
    row = out.iloc[0]
    assert row.status == "failed" and all(pd.isna(row[c]) for c in NUMERIC_COLUMNS)
    md = to_markdown(out)
    line = md.splitlines()[2]
    assert "52.0" not in line and "61.2" not in line and "crashed after timing" in line


def test_missing_paths_and_corrupt_lines(tmp_path, results):
    with pytest.raises(EdgekdError, match="does not exist"):
        compare_results(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgekdError, match="no .jsonl result files"):
        compare_results(tmp_path / "empty")
    run = next(results.rglob("*aaaaaa.jsonl"))
    with open(run, "a") as f:
        f.write('{"schema_version": 1, "run_id": "cut sh')
    out = compare_results(results)
    assert len(out) == 6 and any("incomplete or corrupt" in w for w in out.attrs["warnings"])


def test_device_filter(df, results):
    assert set(compare_results(results, device="host").device) == {"host"}
    with pytest.raises(EdgekdError, match="no result rows for device 'jetson-agx-orin'.*host"):
        compare_results(results, device="jetson-agx-orin")


# --- verdicts and deltas ----------------------------------------------------------------------

@pytest.mark.parametrize(("fps", "p99", "peak", "expected", "phrases"), [
    (60.0, 20.0, 500.0, "meets", []),
    (25.0, 20.0, 500.0, "misses", ["fps 25.0 < 30"]),
    (60.0, 40.0, 500.0, "misses", ["p99 40.0 ms > 33.3 ms"]),
    (60.0, 20.0, 2000.0, "misses", ["memory 2000 MB > 1024 MB"]),
    (20.0, 50.0, 2000.0, "misses", ["fps 20.0 < 30", "p99 50.0 ms > 33.3 ms", "memory 2000 MB > 1024 MB"]),
    (30.0, 33.3, 1024.0, "meets", []),  # on the limit meets it
    (60.0, 20.0, None, "unknown", ["no peak memory"]),
])
def test_verdict_on_crafted_budgets(fps, p99, peak, expected, phrases):
    row = {"status": "ok", "fps": fps, "latency_p99_ms": p99, "peak_mb": peak}
    word, detail = verdict(row, BUDGET)
    assert word == expected
    misses, missing = check_budget(row, BUDGET)
    assert misses + missing == phrases
    for phrase in phrases:
        assert phrase in detail


def test_one_budget_check_for_bench_and_compare():
    # edgekd.core.budget: the verdict is the inference figures; the e2e frame p50 is flagged beside it
    from edgekd.core.budget import budget_checks

    row = {"status": "ok", "fps": 60.0, "latency_p99_ms": 20.0, "peak_mb": 500.0, "e2e_ms": 40.0}
    assert budget_checks(row, BUDGET) == {"fps": True, "latency_p99_ms": True, "peak_mb": True, "e2e_ms": False}
    assert verdict(row, BUDGET)[0] == "meets"
    assert budget_checks({**row, "e2e_ms": None}, BUDGET)["e2e_ms"] is None


def test_verdict_needs_a_measured_row_and_a_budget():
    assert verdict({"status": "failed"}, BUDGET) == (None, None)
    assert verdict({"status": "ok", "fps": 60.0, "latency_p99_ms": 1.0, "peak_mb": 1.0}, None)[0] == "unknown"


def test_table_verdicts(df):
    assert _row(df, "fastscnn-kd", "onnxruntime", "fp32").verdict_detail == "p99 45.0 ms > 33.3 ms"
    assert {_row(df, c, b, p).verdict for c, b, p in [("lraspp-kd", "onnxruntime", "fp32"), ("lraspp-kd", "openvino", "int8"),
                                                       ("lraspp-sup", "onnxruntime", "fp32")]} == {"meets"}


def test_delta_vs_the_same_student_without_kd(df):
    assert _row(df, "lraspp-kd", "onnxruntime", "fp32").delta_miou_vs_nokd == pytest.approx(0.641 - 0.612)
    assert _row(df, "lraspp-kd", "onnxruntime", "fp32").nokd_baseline == "lraspp-sup"
    assert math.isnan(_row(df, "lraspp-kd", "openvino", "int8").delta_miou_vs_nokd)  # no supervised openvino-int8
    assert math.isnan(_row(df, "fastscnn-kd", "onnxruntime", "fp32").delta_miou_vs_nokd)  # other arch
    assert math.isnan(_row(df, "lraspp-sup", "onnxruntime", "fp32").delta_miou_vs_nokd)


# --- selection --------------------------------------------------------------------------------

def test_pareto_front_on_crafted_points():
    points = [(10.0, 0.50), (20.0, 0.40), (15.0, 0.45), (12.0, 0.42), (20.0, 0.40), (5.0, 0.50), (25.0, 0.30)]
    # (12, .42) is beaten by (15, .45); (5, .50) by (10, .50); the two (20, .40) tie and both stay.
    assert pareto_front(points) == [True, True, True, False, True, False, True]
    assert pareto_front([]) == []


def test_pareto_flags_in_the_table(df):
    front = {(r.candidate, r.backend, r.precision) for r in df.itertuples() if r.pareto}
    assert front == {("lraspp-kd", "onnxruntime", "fp32"), ("lraspp-kd", "openvino", "int8"),
                     ("fastscnn-kd", "onnxruntime", "fp32")}


def test_pick_the_most_accurate_meeting_the_budget(df):
    pick = pick_best(df, budget_profile(30, 33.3, 1024))
    assert pick.chosen["candidate"] == "lraspp-kd" and pick.chosen["backend"] == "onnxruntime"
    assert "most accurate of 3" in pick.reason and "next: lraspp-kd openvino-int8" in pick.reason
    assert pick.failures == (("fastscnn-kd onnxruntime-fp32", "p99 45.0 ms > 33.3 ms"),)
    assert json.dumps(pick.as_dict())  # JSON-ready for the demo summary


def test_pick_uses_the_recorded_budget_or_a_profile_name(df):
    assert pick_best(df[df.device == "host"]).chosen["candidate"] == "lraspp-kd"
    assert pick_best(df, "host").device == "host"  # the repository's host profile


def test_pick_when_nothing_meets_the_budget(df):
    pick = pick_best(df, budget_profile(100, 33.3, 1024))
    assert pick.chosen is None
    assert pick.closest["backend"] == "openvino"  # 95 FPS: 5% short, the others ~2x
    assert "no candidate meets the budget; closest: lraspp-kd openvino-int8" in pick.reason
    why = dict(pick.failures)
    assert len(why) == 4 and why["lraspp-kd openvino-int8"] == "fps 95.0 < 100"
    assert why["fastscnn-kd onnxruntime-fp32"] == "fps 30.5 < 100; p99 45.0 ms > 33.3 ms"


def test_one_pick_per_measured_device_with_its_recorded_budget(df):
    from edgekd.compare import pick_per_device

    measured_devices = sorted(df[df.kind == "measurement"].device.unique())
    picks = pick_per_device(df)
    assert list(picks) == measured_devices and "jetson-orin-nano" not in picks  # estimates only: no pick
    assert picks["host"].chosen["candidate"] == "lraspp-kd" and picks["host"].text() == pick_best(df[df.device == "host"]).text()
    no_budget = df.assign(budget=None)
    assert pick_per_device(no_budget, skip_without_budget=True) == {}  # the report leaves such devices out
    with pytest.raises(EdgekdError, match="carry no real-time budget"):
        pick_per_device(no_budget)


def test_estimates_are_never_picked(df):
    pick = pick_best(df, budget_profile(30, 33.3, 4096, name="jetson-orin-nano"))
    assert pick.chosen is None and "no measured ok rows" in pick.reason


# --- output formats and the CLI ---------------------------------------------------------------

def test_csv_json_md_html(df):
    back = pd.read_csv(io.StringIO(to_csv(df)))
    assert len(back) == len(df) and {"miou", "fps", "verdict", "budget_target_fps"} <= set(back.columns)
    assert back.loc[back.status == "failed", ["miou", "fps", "latency_p99_ms"]].isna().all().all()
    rows = json.loads(to_json(df))
    failed = [r for r in rows if r["status"] == "failed"][0]
    assert failed["fps"] is None and failed["miou"] is None and failed["reason"].startswith("RuntimeError")
    md = render(df, "md")
    assert "### Measured" in md and "### Estimates (not measured)" in md and "| 64.1 | +2.90 | -0.02 |" in md
    page = render(df, "html")
    assert page.startswith("<!DOCTYPE html>") and page.count("<tr class=") == len(df)


def test_sort_by_column(df):
    by_fps = sort_table(df, "fps")
    ok = by_fps[(by_fps.kind == "measurement") & (by_fps.status == "ok")]
    assert list(ok.fps) == sorted(ok.fps, reverse=True)
    by_p99 = sort_table(df, "latency_p99_ms")
    ok = by_p99[(by_p99.kind == "measurement") & (by_p99.status == "ok")]
    assert list(ok.latency_p99_ms) == sorted(ok.latency_p99_ms)
    with pytest.raises(EdgekdError, match="Did you mean 'fps'"):
        sort_table(df, "fsp")


def test_cli_compare_formats_and_pick(results, capsys):
    assert main(["compare", str(results), "--format", "csv"]) == 0
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == 6
    assert main(["compare", str(results), "--pick", "--sort", "fps"]) == 0
    out = capsys.readouterr().out
    assert "host: measured" in out and "pick lraspp-kd onnxruntime-fp32" in out and "unavailable [" in out
    assert main(["compare", str(results), "--sort", "nope"]) == 2
    assert "--sort 'nope' is not a column" in capsys.readouterr().err


def test_cli_compare_plots(results, tmp_path, capsys):
    assert main(["compare", str(results), "--format", "json", "--plots", str(tmp_path / "plots")]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 6
    assert len(list((tmp_path / "plots").glob("*.png"))) == 5


# --- plots ------------------------------------------------------------------------------------

def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plots_written(df, tmp_path):
    paths = make_plots(df, tmp_path)
    assert sorted(p.name for p in paths) == ["host-latency.png", "host-miou-vs-fps.png", "host-sustained-fps.png",
                                             "kd-miou-vs-distillation-factor.png", "kd-miou-vs-relative-error.png"]
    for path in paths:
        width, height = _png_size(path)
        assert path.stat().st_size > 5000 and width > 300 and height > 150


def test_plots_skip_what_the_records_lack(tmp_path):
    from edgekd.compare import render_plots

    plain = [r for r in fixture_records() if r["candidate"]["distillation_method"] == "supervised"]
    plots, skipped = render_plots(compare_results(plain), tmp_path)
    assert sorted(p.path.name for p in plots) == ["host-latency.png", "host-miou-vs-fps.png"]
    assert any("distillation factor" in s for s in skipped) and any("relative error" in s for s in skipped)
