"""The plots' contents, read off the matplotlib Figure: the pick ringed where it appears, every legend
entry drawn, labels clear of each other and of the axes edge, the latency glyphs explained.

The rows are the hand-made fixtures of test_compare_fixtures.py (test data, not results): host pick
lraspp-kd onnxruntime-fp32 at 51.0 FPS, 64.1 % mIoU, p50 18.2 ms, distillation factor 5.5.
"""
from __future__ import annotations

import itertools

import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.lines import Line2D
from test_compare_fixtures import fixture_records

from edgekd.compare import compare_results
from edgekd.compare.curve import resolution_figure
from edgekd.compare.labels import GID as LABEL_GID
from edgekd.compare.labels import label_boxes
from edgekd.compare.latency_plot import latency_figure
from edgekd.compare.marks import GID as PICK_GID
from edgekd.compare.marks import PickMark, pick_marks
from edgekd.compare.plots import _ok, accuracy_vs_fps_figure, kd_curve_figure, sustained_figure

PICK = "pick: lraspp-kd onnxruntime-fp32 360x480"


@pytest.fixture(scope="module")
def df():
    return compare_results(fixture_records())


@pytest.fixture(scope="module")
def host(df):
    return _ok(df)[_ok(df)["device"] == "host"]


def _rings(ax) -> list[PathCollection]:
    return [c for c in ax.collections if c.get_gid() == PICK_GID]


def _legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def _renderer(fig):
    return fig.canvas.get_renderer()


def _drawn(artist) -> bool:
    """Whether an artist puts ink on the axes: a line through 2+ points, a marker, a non-empty scatter."""
    if isinstance(artist, Line2D):
        n = len(artist.get_xdata())
        return (n >= 2 and artist.get_linestyle() not in ("None", "none", "")) or (
            n >= 1 and artist.get_marker() not in ("", "None", None, " "))
    if isinstance(artist, PathCollection):
        return len(artist.get_offsets()) > 0
    return artist.get_visible()


def _assert_every_entry_drawn(fig, ax, glyphs: set[str]) -> None:
    """Each legend label is a glyph explained by the data (``glyphs``) or names a drawn artist of ``ax``."""
    artists = {a.get_label(): a for a in [*ax.lines, *ax.collections, *ax.patches]}
    for text in _legend_texts(fig):
        assert text in glyphs or (text in artists and _drawn(artists[text])), text


def _assert_labels_clear(fig) -> None:
    renderer = _renderer(fig)
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        boxes = label_boxes(ax, renderer)
        for box in boxes:
            assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, box
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b), (a, b)


def _shown_ticks(axis) -> list:
    """The tick labels drawn: those whose tick lies inside the view limits (matplotlib lays out a few beyond)."""
    lo, hi = sorted(axis.get_view_interval())
    return [label for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels()) if lo <= loc <= hi]


def _assert_texts_inside_figure(fig) -> None:
    """Titles, axis labels, tick labels and legends inside the canvas (nothing clipped when saved)."""
    fig.canvas.draw()
    renderer, page = _renderer(fig), fig.bbox
    texts = list(fig.legends)
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *_shown_ticks(ax.xaxis), *_shown_ticks(ax.yaxis)]
    for t in texts:
        if isinstance(t, Line2D) or not t.get_visible() or (hasattr(t, "get_text") and not t.get_text()):
            continue
        box = t.get_window_extent(renderer)
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= page.x1 + 1 and box.y1 <= page.y1 + 1, t


def test_marks_are_the_picks(df):
    mark = pick_marks(df)["host"]
    assert mark.met and mark.word == "pick" and mark.legend_label() == PICK
    assert (mark.row["candidate"], mark.row["backend"], mark.row["precision"]) == ("lraspp-kd", "onnxruntime", "fp32")


def test_accuracy_plot_rings_the_pick_and_names_it(df, host):
    fig = accuracy_vs_fps_figure(host, "host", pick_marks(df)["host"])
    ax = fig.axes[0]
    (ring,) = _rings(ax)
    assert ring.get_offsets().tolist() == [[51.0, pytest.approx(64.1)]]
    assert PICK in _legend_texts(fig)
    bold = [t.get_text() for t in ax.texts if t.get_gid() == LABEL_GID and t.get_fontweight() == "bold"]
    assert bold == ["pick: lraspp-kd\nfp32"]
    _assert_every_entry_drawn(fig, ax, {"onnxruntime", "openvino", "meets", "misses"})
    _assert_labels_clear(fig)
    _assert_texts_inside_figure(fig)


def test_closest_candidate_ringed_grey_when_none_meets_the_budget():
    recs = fixture_records()
    for rec in recs:
        rec["device"]["real_time"] = {**rec["device"]["real_time"], "target_fps": 1000.0}
    df = compare_results(recs)
    mark = pick_marks(df)["host"]
    assert not mark.met
    fig = accuracy_vs_fps_figure(_ok(df), "host", mark)
    (ring,) = _rings(fig.axes[0])
    assert ring.get_edgecolor()[0][:3] == pytest.approx((0x8d / 255, 0x99 / 255, 0xae / 255))
    assert any(t.startswith("closest: ") and t.endswith("(no candidate meets the budget)") for t in _legend_texts(fig))


def test_one_point_pareto_front_is_drawn():
    two = compare_results([r for r in fixture_records() if r["candidate"]["label"] in
                           ("lraspp-sup/onnxruntime-fp32", "lraspp-kd/openvino-int8")])
    assert two["pareto"].sum() == 1  # lraspp-kd openvino-int8 dominates: a one-point front
    fig = accuracy_vs_fps_figure(_ok(two), "host", pick_marks(two)["host"])
    ax = fig.axes[0]
    (front,) = [line for line in ax.lines if line.get_label().startswith("Pareto front")]
    assert front.get_label() == "Pareto front (one point)" and _drawn(front)
    assert (front.get_xdata()[0], front.get_ydata()[0]) == (95.0, pytest.approx(63.3))
    _assert_every_entry_drawn(fig, ax, {"onnxruntime", "openvino", "meets"})


def _crowd(host, n: int, cols: int, step_fps: float) -> pd.DataFrame:
    """``n`` copies of a fixture row on a small grid (``cols`` a row, rows 0.2 mIoU points apart), each its
    own candidate, and two far ones (so the axes span far more than the grid)."""
    rows = []
    for i, (fps, miou) in enumerate([(40 + (i % cols) * step_fps, 0.60 + (i // cols) * 0.002) for i in range(n)]
                                    + [(5.0, 0.30), (120.0, 0.90)]):
        row = host.iloc[0].copy()
        row["candidate"], row["cell_key"] = f"student-{i:02d}", f"k{i}"
        row["fps"], row["miou"], row["pareto"] = fps, miou, False
        rows.append(row)
    return pd.DataFrame(rows).reset_index(drop=True)


def test_crowded_labels_do_not_overlap_or_leave_the_axes(host):
    """Twelve candidates within 6 FPS and 2 mIoU points: labels must spread out (leader lines), not pile up."""
    crowd = _crowd(host, 12, 4, 2.0)
    fig = accuracy_vs_fps_figure(crowd, "host", PickMark("host", crowd.iloc[5].to_dict(), True))
    ax = fig.axes[0]
    labels = [t for t in ax.texts if t.get_gid() == LABEL_GID]
    assert len(labels) == 14 and any(t.arrow_patch is not None for t in labels)
    assert labels[0].get_text().startswith("pick: student-05")  # the pick is placed first, nearest its point
    _assert_labels_clear(fig)


def test_labels_that_cannot_fit_are_left_out_and_counted(host):
    """Sixty candidates on one spot: some labels have no clean place; they are dropped, not overlapped,
    the title says how many, and the pick's label is never the one dropped."""
    crowd = _crowd(host, 60, 10, 0.01)
    fig = accuracy_vs_fps_figure(crowd, "host", PickMark("host", crowd.iloc[59].to_dict(), True))
    ax = fig.axes[0]
    shown = [t for t in ax.texts if t.get_gid() == LABEL_GID]
    assert 0 < len(shown) < 62 and shown[0].get_text().startswith("pick: student-59")
    assert ax.get_title().endswith(f"({62 - len(shown)} of 62 point labels left out: they would overlap)")
    _assert_labels_clear(fig)


def test_latency_plot_explains_its_glyphs_and_rings_the_pick(df, host):
    fig = latency_figure(host, "host", pick_marks(df)["host"])
    ax = fig.axes[0]
    texts = _legend_texts(fig)
    assert {"min–max", "p50–p90", "p90–p99", "p50", "mean", "latency budget 33.3 ms", PICK} <= set(texts)
    ticks = {t.get_text(): t for t in ax.get_yticklabels()}
    picked = ticks["pick: lraspp-kd onnxruntime-fp32"]
    assert picked.get_fontweight() == "bold"
    (ring,) = _rings(ax)
    assert ring.get_offsets().tolist() == [[18.2, list(ticks).index(picked.get_text())]]
    _assert_texts_inside_figure(fig)

    bare = host.assign(latency_min_ms=float("nan"), latency_max_ms=float("nan"), latency_mean_ms=float("nan"))
    texts = _legend_texts(latency_figure(bare, "host"))
    assert "min–max" not in texts and "mean" not in texts and "p50" in texts  # only glyphs that are drawn


def test_kd_curves_ring_the_pick(df):
    marks = pick_marks(df)
    for key, x in (("distillation_factor", 5.5), ("relative_error", 0.355 / 0.30)):
        fig = kd_curve_figure(df, key, key, marks)
        (ring,) = _rings(fig.axes[0])
        assert ring.get_offsets().tolist() == [[pytest.approx(x), pytest.approx(64.1)]]
        assert f"{PICK} @ host" in _legend_texts(fig)
        assert [t.get_text() for t in fig.axes[0].texts if t.get_fontweight() == "bold"] == ["pick: lraspp-kd"]
        _assert_every_entry_drawn(fig, fig.axes[0], set())
        _assert_labels_clear(fig)


def test_sustained_plot_marks_the_pick_line_only_when_it_has_one(df, host):
    assert not [line for line in sustained_figure(host, "host", pick_marks(df)["host"]).axes[0].lines
                if line.get_gid() == PICK_GID]  # the pick ran no sustained test
    int8 = host[host["precision"] == "int8"].iloc[0]
    fig = sustained_figure(host, "host", PickMark("host", int8.to_dict(), True))
    (line,) = [line for line in fig.axes[0].lines if line.get_gid() == PICK_GID]
    assert line.get_label() == "pick: lraspp-kd openvino-int8" and list(line.get_ydata()) == [96.0, 94.0, 90.0, 88.0]


def test_resolution_curves_ring_the_pick_in_its_panel():
    rows = [dict(device="h", kind="measurement", status="ok", backend=b, precision="fp32", candidate=c, arch=c, input=i,
                 miou=m, latency_p50_ms=lat * (1 if b == "ort" else 0.6), cell_key=f"{c}:{b}:{i}")
            for b in ("ort", "ov") for c, i, m, lat in
            [("t", "180x240", 0.70, 10), ("t", "240x320", 0.76, 16), ("t", "360x480", 0.80, 30),
             ("s", "240x320", 0.74, 12), ("s", "360x480", 0.78, 20)]]
    df = pd.DataFrame(rows)
    pick = df[(df["candidate"] == "s") & (df["backend"] == "ov") & (df["input"] == "360x480")].iloc[0]
    fig = resolution_figure(df, "h", "t", PickMark("h", pick.to_dict(), True))
    ort, ov = fig.axes
    assert not _rings(ort)
    (ring,) = _rings(ov)
    assert ring.get_offsets().tolist() == [[pytest.approx(12.0), pytest.approx(78.0)]]
    assert "pick: s ov-fp32 360x480" in _legend_texts(fig)
    assert [t.get_text() for t in ov.texts if t.get_fontweight() == "bold"] == ["pick: 360x480"]
    _assert_labels_clear(fig)
    _assert_texts_inside_figure(fig)
