"""tools/bench_crosscheck.py's verdict: paired per-round ratios and an interval that must fit the target."""
import importlib.util
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "bench_crosscheck.py"


@pytest.fixture(scope="module")
def crosscheck():
    spec = importlib.util.spec_from_file_location("bench_crosscheck", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pairing_cancels_a_host_that_changes_speed_between_rounds(crosscheck):
    # The host runs 1.6x slower in rounds 3-4: the medians of each side move, each round's ratio does not.
    ref = [10.0, 10.0, 16.0, 16.0, 10.0, 10.0, 16.0, 16.0]
    harness = [r * 1.01 for r in ref]
    out = crosscheck.paired_ratio(harness, ref)
    assert out["paired_ratio"] == pytest.approx(1.01)
    assert out["paired_ratio_ci"][0] == pytest.approx(1.01) and out["paired_ratio_ci"][1] == pytest.approx(1.01)
    assert out["verdict"] == "within target"


def test_a_harness_7_percent_slow_is_outside(crosscheck):
    ref = [66.6, 66.0, 67.1, 66.8, 66.2, 66.9, 66.5, 66.4]
    out = crosscheck.paired_ratio([r * 1.07 for r in ref], ref)
    assert out["verdict"] == "outside target"


def test_noisy_rounds_straddling_the_target_are_not_ranked(crosscheck):
    ref = [10.0] * 8
    out = crosscheck.paired_ratio([9.0, 10.0, 11.0, 9.5, 10.5, 9.2, 10.8, 10.0], ref)
    assert out["verdict"].startswith("not resolvable at this noise")
    lo, hi = out["paired_ratio_ci"]
    assert lo < 0.97 < 1.03 < hi


def test_too_few_rounds_give_no_interval(crosscheck):
    out = crosscheck.paired_ratio([10.0, 10.1, 10.2], [10.0, 10.0, 10.0])
    assert out["paired_ratio_ci"] == [None, None]
    assert "need >= 6 rounds" in out["verdict"]
