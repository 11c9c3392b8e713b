"""A self-contained static HTML report of benchmark results.

One file, ``report.html``: inline CSS, no script, no external CSS/JS/CDN or font, the plots
embedded as base64 ``data:`` URIs (their PNGs are also written beside it in ``plots/`` for reuse).
It opens from a USB stick, an e-mail attachment or a CI artifact viewer exactly as it was made.
Every value taken from a result record is HTML-escaped.
"""
from __future__ import annotations

import base64
import html
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import pandas as pd

from edgekd import __version__
from edgekd.compare.format import to_html_table
from edgekd.compare.page import CSS, page, table_page  # noqa: F401  (table_page re-exported)
from edgekd.compare.page import wrap as _wrap
from edgekd.compare.load import ESTIMATE, MEASUREMENT, flatten, load_records, run_manifests
from edgekd.compare.plots import Plot, render_plots
from edgekd.compare.select import Pick, pick_per_device
from edgekd.compare.table import build_table
from edgekd.report.environment import environment_table

REPORT_NAME = "report.html"
ACCURACY_KEYS = ["candidate", "arch", "params", "macs", "method", "teacher", "backend", "precision", "precision_used",
                 "input", "miou", "delta_miou_vs_nokd", "delta_miou_vs_fp32", "boundary_f", "distillation_factor",
                 "relative_error", "teacher_student_kl", "probability_correlation"]
SPEED_KEYS = ["candidate", "backend", "precision", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "fps",
              "throughput_fps", "e2e_ms", "deadline_miss_pct", "peak_mb", "model_mb", "energy_mj", "pareto", "status", "verdict"]


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def image_data_uri(path: Path) -> str:
    """A PNG as a ``data:image/png;base64,...`` URI, so the page needs no file beside it."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def figure_html(plot: Plot) -> str:
    return (f'<figure><img src="{image_data_uri(plot.path)}" alt="{_esc(plot.title)}">'
            f"<figcaption><b>{_esc(plot.title)}.</b> {_esc(plot.caption)} "
            f'(<a href="plots/{_esc(plot.path.name)}">PNG</a>)</figcaption></figure>')


def pick_html(pick: Pick) -> str:
    klass = "pick" if pick.chosen else "pick none"
    items = "".join(f"<li>{_esc(label)}: {_esc(why)}</li>" for label, why in pick.failures)
    failing = f"<div>Not meeting the budget:</div><ul>{items}</ul>" if items else ""
    return (f'<div class="{klass}"><b>{_esc(pick.device)}</b> — budget {_esc(pick.budget.describe())}<br>'
            f"{_esc(pick.reason)}{failing}</div>")


def device_section(device: str, group: pd.DataFrame, plots: list[Plot]) -> str:
    """The accuracy/KD table, the speed/budget table, what was not measured and the device's plots."""
    budget = next((b for b in group["budget"] if isinstance(b, dict)), None)
    limits = (f"budget ≥ {budget['target_fps']:g} FPS, p99 ≤ {budget['latency_budget_ms']:g} ms, peak memory ≤ "
              f"{budget['memory_budget_mb']:g} MB" if budget else "no real-time budget recorded")
    parts = [f'<h2 id="device-{_esc(device)}">Device {_esc(device)}</h2><div class="meta">{_esc(limits)}</div>']
    parts.append("<h3>Candidates, accuracy and KD metrics</h3>" + _wrap(to_html_table(group, ACCURACY_KEYS)))
    parts.append("<h3>Speed, memory and verdict against the budget</h3>"
                 + _wrap(to_html_table(group, SPEED_KEYS, plain_status=True)))
    items = [f"<li>{_esc(r['candidate'])} {_esc(r['backend'])}-{_esc(r['precision'])}: <b>{_esc(r['status'])}</b> — "
             f"{_esc(r['reason'])}</li>" for _, r in group.iterrows() if r["status"] != "ok"]
    items += [f"<li>{_esc(r['candidate'])} {_esc(r['backend'])}-{_esc(r['precision'])}: {_esc(r['note'])}</li>"
              for _, r in group.iterrows() if isinstance(r.get("note"), str)]
    if items:
        parts.append(f"<h3>Not measured, and notes</h3><ul>{''.join(items)}</ul>")
    if plots:
        parts.append('<div class="plots">' + "".join(figure_html(p) for p in plots) + "</div>")
    return "\n".join(parts)


def _device_plots(plots: Iterable[Plot], device: str) -> list[Plot]:
    prefix = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in device) + "-"
    return [p for p in plots if p.path.name.startswith(prefix)]


def _picks(df: pd.DataFrame) -> dict[str, Pick]:
    return pick_per_device(df, skip_without_budget=True)


def _header(sources: Sequence[Any], n_records: int, df: pd.DataFrame) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    src = ", ".join(_esc(s) for s in sources)
    n_ok = int((df["status"] == "ok").sum()) if not df.empty else 0
    return (f"<h1>edgekd benchmark report</h1><div class=\"meta\">generated {when} by edgekd {_esc(__version__)} · "
            f"{n_records} record(s) from {src} · {len(df)} cell(s) shown, {n_ok} measured ok · mIoU and Δ in % points; "
            "★ = on the accuracy-vs-FPS Pareto front of its device</div>")


def build_html(df: pd.DataFrame, plots: list[Plot], skipped: list[str], manifests: list[dict[str, Any]],
               sources: Sequence[Any], n_records: int, warnings: Sequence[str] = ()) -> str:
    """The whole page as a string (no I/O besides reading the PNGs to embed)."""
    body = [_header(sources, n_records, df)]
    picks = _picks(df)
    if picks:
        body.append("<h2>Pick per device</h2>" + "".join(pick_html(p) for p in picks.values()))
    measured = df[df["kind"] == MEASUREMENT] if not df.empty else df
    for device, group in (measured.groupby("device", sort=True) if not measured.empty else []):
        body.append(device_section(str(device), group, _device_plots(plots, str(device))))
    kd_plots = [p for p in plots if p.path.name.startswith("kd-")]
    if kd_plots:
        body.append('<h2>Accuracy vs KD metrics</h2><div class="plots">' + "".join(figure_html(p) for p in kd_plots) + "</div>")
    estimates = df[df["kind"] == ESTIMATE] if not df.empty else df
    if not estimates.empty:
        body.append('<div class="estimate"><h2>Estimates — not measurements</h2><p>Figures predicted without '
                    "running the model on the device; never mixed with the measured tables, fronts or picks.</p>"
                    + _wrap(to_html_table(estimates, ["device"] + SPEED_KEYS, plain_status=True)) + "</div>")
    body.append("<h2>Environment of each run</h2>" + _wrap(environment_table(manifests)))
    notes = list(warnings) + list(skipped)
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f'<li class="warn">{_esc(n)}</li>' for n in notes) + "</ul>")
    return page("edgekd benchmark report", "\n".join(body))


def write_report(results_paths: Sequence[Any], out_dir: str | Path, device: str | None = None) -> Path:
    """Read the result files/folders (or records), write ``out_dir/report.html`` and ``out_dir/plots/*.png``."""
    if isinstance(results_paths, (str, Path)):
        results_paths = [results_paths]
    out_dir = Path(out_dir)
    records, warnings = load_records(results_paths)
    df = build_table((flatten(r) for r in records), device=device)
    plots, skipped = render_plots(df, out_dir / "plots")
    kept = [r for r in records if device is None or (r.get("device") or {}).get("name") == device]
    text = build_html(df, plots, skipped, run_manifests(kept), [s for s in results_paths if not isinstance(s, dict)]
                      or ["records passed in"], len(kept), warnings)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REPORT_NAME
    path.write_text(text, encoding="utf-8")
    return path
