"""tools/interleaved_latency.py: every artifact is timed in every round, the order flips each round, and
the ratios are paired per round (a machine-state change hits both sides of a ratio alike)."""
from __future__ import annotations

import time

import pytest
from conftest import load_tool


def test_rounds_alternate_order_and_ratios_pair_each_round():
    tool = load_tool("interleaved_latency")
    order: list[str] = []
    calls = [lambda: order.append("a"), lambda: order.append("b")]
    firsts = []
    original = tool.round_median

    def fake_round(call, seconds):
        call()
        firsts.append(order[-1])
        return {"a": 10.0, "b": 5.0}[order[-1]] * (2 if len(firsts) > 4 else 1)  # the "machine" slows 2x after round 2

    tool.round_median = fake_round
    try:
        medians = tool.interleave(calls, rounds=4, seconds=0.0)
    finally:
        tool.round_median = original
    assert firsts == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert medians == [[10.0, 10.0, 20.0, 20.0], [5.0, 5.0, 10.0, 10.0]]
    line = tool.report(["base", "other"], medians)[1]
    assert "ratio to first 0.50 (rounds 0.50-0.50)" in line  # paired: the slowdown cancels


def test_round_median_times_the_call():
    tool = load_tool("interleaved_latency")
    assert 4.0 <= tool.round_median(lambda: time.sleep(0.005), 0.05) < 50.0


def _exit_message(tool, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        tool.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_a_folder_without_manifest_is_refused_in_one_line(capsys):
    assert "not an artifact folder" in _exit_message(load_tool("interleaved_latency"), ["/nonexistent"], capsys)


def test_fewer_than_two_rounds_is_refused_in_one_line(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text("{}")
    err = _exit_message(load_tool("interleaved_latency"), ["--rounds", "1", str(tmp_path)], capsys)
    assert "--rounds 1: at least 2" in err
