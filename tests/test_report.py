"""edgekd report: a self-contained HTML page, checked as text and rendered in headless Chromium."""
from __future__ import annotations

import base64
import re
import shutil
import subprocess

import numpy as np
import pytest
from test_compare_fixtures import estimate_record, fixture_records, write_results

from edgekd.cli import main
from edgekd.report import write_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
# Appended to a *copy* of the report (the report itself has no script): after load, count the images
# that decoded (naturalWidth > 0) and the table rows, and write the counts into the DOM.
CHECK_SCRIPT = """<script>window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var rows = document.querySelectorAll("table.results tbody tr").length;
  var env = document.querySelectorAll("table.environment tbody tr").length;
  var d = document.createElement("div"); d.id = "edgekd-check";
  d.textContent = "imgs=" + imgs.length + " ok=" + ok + " rows=" + rows + " env=" + env;
  document.body.appendChild(d);
});</script>"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return write_report([write_results(root), estimate_record()], root / "out")


def test_report_is_self_contained(report):
    text = report.read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from a network
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 5 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert sorted(p.name for p in (report.parent / "plots").glob("*.png")) == [
        "host-latency.png", "host-miou-vs-fps.png", "host-sustained-fps.png",
        "kd-miou-vs-distillation-factor.png", "kd-miou-vs-relative-error.png"]


def test_report_content(report):
    text = report.read_text(encoding="utf-8")
    assert "pick lraspp-kd onnxruntime-fp32 — the most accurate of 3" in text
    assert "Estimates — not measurements" in text and "jetson-orin-nano" in text
    assert "Core ML prediction is only supported on macOS" in text
    assert "misses: p99 45.0 ms &gt; 33.3 ms" in text
    assert "TEST CPU (fixture)" in text and "0.4/0.3/0.2 → 1.1/0.6/0.3" in text and "cdcdcdcdcdcd" in text
    assert "0.1.0 @ 0123abc" in text
    assert "drawn from the recorded percentiles" in text.lower()


def test_record_text_is_escaped(tmp_path):
    rec = {**fixture_records()[4], "error": '<script>alert("x")</script> & <b>'}
    text = write_report([rec], tmp_path).read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;" in text


def test_cli_report(tmp_path, capsys):
    results = write_results(tmp_path)
    assert main(["report", str(results), "--out", str(tmp_path / "r")]) == 0
    assert "report.html" in capsys.readouterr().out and (tmp_path / "r" / "report.html").is_file()


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; CI: tools/ci_system_packages.sh)")
    return path


def _run_chromium(args: list[str], profile_dir) -> subprocess.CompletedProcess:
    cmd = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def test_report_renders_in_chromium(report, tmp_path):
    checked = tmp_path / "check.html"
    checked.write_text(report.read_text(encoding="utf-8").replace("</body>", CHECK_SCRIPT + "</body>"), encoding="utf-8")
    done = _run_chromium(["--virtual-time-budget=10000", "--dump-dom", checked.as_uri()], tmp_path / "profile")
    marker = re.search(r'<div id="edgekd-check">imgs=(\d+) ok=(\d+) rows=(\d+) env=(\d+)</div>', done.stdout)
    assert marker, f"no check marker in chromium's DOM dump; stderr: {done.stderr[-2000:]}"
    imgs, ok, rows, env = map(int, marker.groups())
    # 6 host cells in two tables (accuracy, speed) + 1 estimate row; 2 runs (estimates have no environment).
    assert (imgs, ok, rows, env) == (5, 5, 13, 2)


def test_report_screenshot_is_not_blank(report, tmp_path):
    import cv2

    shot = tmp_path / "report.png"
    done = _run_chromium(["--window-size=1400,2400", f"--screenshot={shot}", report.as_uri()], tmp_path / "profile")
    assert shot.is_file(), f"chromium wrote no screenshot; stderr: {done.stderr[-2000:]}"
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (2400, 1400)
    ink = (image < 200).any(axis=2)
    assert ink.mean() > 0.02  # text, table rules and plots, not an empty page
    colourful = np.abs(image.astype(int) - image.mean(axis=2, keepdims=True)).max(axis=2) > 40
    assert colourful.sum() > 2000  # the embedded plots' coloured markers and lines were painted
