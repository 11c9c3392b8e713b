"""Resolution-curve verdicts on fixture rows: interpolation, out of range, dominance, bad reference."""
import pandas as pd
import pytest

from edgekd.compare.curve import add_curve_verdicts, versus_curve
from edgekd.errors import EdgekdError

CURVE = pd.DataFrame({"latency_p50_ms": [10.0, 20.0, 40.0], "miou": [0.60, 0.70, 0.80], "input": ["a", "b", "c"]})


def test_interpolated_above_and_below():
    assert versus_curve(0.70, 15.0, CURVE)[0] == pytest.approx(0.05)
    assert versus_curve(0.60, 30.0, CURVE)[1].startswith("below (-15.0 pts")


def test_out_of_range_and_dominance():
    assert versus_curve(0.50, 5.0, CURVE) == (None, "out of range: faster than the whole curve (10.0–40.0 ms)")
    assert versus_curve(0.90, 5.0, CURVE)[1].startswith("above")
    assert versus_curve(0.75, 50.0, CURVE)[1].startswith("below: slower than the whole curve")


def test_rows_and_bad_reference():
    rows = [dict(device="h", kind="measurement", status="ok", backend="ort", precision="fp32", candidate=c, arch=c,
                 input=i, miou=m, latency_p50_ms=l) for c, i, m, l in
            [("t", "a", 0.6, 10), ("t", "b", 0.8, 30), ("s", "x", 0.75, 20)]]
    df = add_curve_verdicts(pd.DataFrame(rows), "t")
    s = df[df["candidate"] == "s"].iloc[0]
    assert s["delta_miou_vs_curve"] == pytest.approx(0.05) and s["vs_curve"].endswith("vs t")
    with pytest.raises(EdgekdError, match="'u' is not a candidate"):
        add_curve_verdicts(pd.DataFrame(rows), "u")
