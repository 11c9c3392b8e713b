"""Rendering the comparison table: terminal (rich), Markdown, CSV, JSON and an HTML table.

CSV and JSON carry the raw values (mIoU as a fraction, times in ms, memory in MB) for other
tools; the terminal, Markdown and HTML show rounded figures with units in the headers (mIoU and
its deltas in percentage points). A missing figure is shown as "—", never as 0.
"""
from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import pandas as pd

from edgekd.errors import EdgekdError
from edgekd.core.suggest import did_you_mean

DASH = "—"


def _fixed(digits: int, suffix: str = "") -> Callable[[float], str]:
    return lambda v: f"{v:.{digits}f}{suffix}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _signed_pct(v: float) -> str:
    return f"{100 * v:+.2f}"


def _si(v: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.2f}{unit}"
    return f"{v:.0f}"


@dataclass(frozen=True)
class Column:
    """How one DataFrame column is shown; ``higher_is_better`` sets the default sort direction."""

    key: str
    header: str
    fmt: Callable[[float], str] | None = None
    higher_is_better: bool | None = None


COLUMNS = (
    Column("device", "device"), Column("candidate", "candidate"), Column("arch", "arch"),
    Column("params", "params", _si, False), Column("macs", "MACs", _si, False),
    Column("method", "KD method"), Column("teacher", "teacher"), Column("backend", "backend"),
    Column("precision", "prec"), Column("precision_used", "ran as"), Column("input", "input"),
    Column("fused", "pre/post in graph"),
    Column("miou", "mIoU %", _pct, True), Column("delta_miou_vs_nokd", "Δ no-KD", _signed_pct, True),
    Column("delta_miou_vs_fp32", "Δ FP32", _signed_pct, True), Column("boundary_f", "BF %", _pct, True),
    Column("distillation_factor", "P_t/P_s", _fixed(1, "×"), True),
    Column("relative_error", "E_s/E_t", _fixed(2), False),
    Column("teacher_student_kl", "KL(t‖s)", _fixed(3), False),
    Column("probability_correlation", "corr", _fixed(3), True),
    Column("latency_p50_ms", "p50 ms", _fixed(1), False), Column("latency_p50_ci", "p50 95% CI"),
    Column("p50_not_distinguishable_from", "p50 not distinguishable from"),
    Column("latency_p90_ms", "p90 ms", _fixed(1), False),
    Column("latency_p99_ms", "p99 ms", _fixed(1), False), Column("latency_p99_ci", "p99 95% CI"), Column("fps", "FPS", _fixed(1), True),
    Column("throughput_fps", "thr FPS", _fixed(1), True), Column("e2e_ms", "e2e ms", _fixed(1), False),
    Column("deadline_miss_pct", "miss %", _fixed(1), False), Column("peak_mb", "peak MB", _fixed(0), False),
    Column("model_mb", "model MB", _fixed(1), False), Column("energy_mj", "mJ/frame", _fixed(1), False),
    Column("delta_miou_vs_curve", "Δ curve", _signed_pct, True), Column("vs_curve", "vs resolution curve"),
    Column("pareto", "front"), Column("status", "status"), Column("verdict", "verdict"), Column("note", "note"),
)
BY_KEY = {c.key: c for c in COLUMNS}
# The terminal shows a compact view; md/csv/json/html carry every column.
TERMINAL_KEYS = ("candidate", "runtime", "input", "params", "macs", "method", "miou", "delta_miou_vs_nokd", "delta_miou_vs_fp32",
                 "distillation_factor", "relative_error", "teacher_student_kl", "probability_correlation",
                 "latency_p50_ms", "latency_p50_ci", "p50_not_distinguishable_from", "latency_p99_ms", "latency_p99_ci", "fps", "e2e_ms", "deadline_miss_pct", "peak_mb", "vs_curve", "status", "verdict")
TERMINAL_ONLY = {"runtime": Column("runtime", "runtime")}
RAW_DROP = ("budget",)
CSV_DROP = ("sustained_fps",)  # a list per row: JSON keeps it, a CSV cell cannot


def sort_ascending(column: str) -> bool:
    """Sort direction for ``--sort COLUMN``; an unknown column raises with the valid names."""
    if column not in BY_KEY:
        hint = did_you_mean(column, BY_KEY)
        raise EdgekdError(f"--sort {column!r} is not a column.{hint} Columns: {', '.join(BY_KEY)}")
    return BY_KEY[column].higher_is_better is False or BY_KEY[column].higher_is_better is None


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def cell_text(row: pd.Series, key: str) -> str:
    """One cell as shown to people: rounded number, "—" when absent, verdict with its reason."""
    value = row.get(key)
    if key == "verdict":
        if _missing(value):
            return DASH
        return value if value == "meets" else f"{value}: {row.get('verdict_detail')}"
    if key == "status":
        return value if value == "ok" or _missing(row.get("reason")) else f"{value}: {row.get('reason')}"
    if key == "pareto":
        return "★" if value is True else ""
    if key == "fused":
        return "yes" if value is True else ""
    if _missing(value):
        return DASH
    col = BY_KEY.get(key)
    return col.fmt(value) if col and col.fmt else str(value)


def display_frame(df: pd.DataFrame, keys: list[str] | None = None) -> pd.DataFrame:
    """Strings to show, with the short headers; ``keys`` defaults to every known column present."""
    keys = [k for k in (keys or [c.key for c in COLUMNS]) if k in df.columns]
    data = {BY_KEY[k].header if k in BY_KEY else k: [cell_text(row, k) for _, row in df.iterrows()] for k in keys}
    return pd.DataFrame(data, index=df.index)


def terminal_keys(df: pd.DataFrame) -> list[str]:
    """The terminal table's columns, without those that are empty on every row."""
    always = ("candidate", "runtime", "status", "verdict")
    return [k for k in TERMINAL_KEYS if k in always or (k in df.columns and df[k].notna().any())]


def terminal_text(row: pd.Series, key: str) -> str:
    """A cell for the terminal: backend and precision in one column, ★ after Pareto candidates."""
    if key == "runtime":
        return f"{row.get('backend')}-{row.get('precision')}" + (" fused" if row.get("fused") is True else "")
    if key == "candidate":
        return f"{row.get('candidate')}{' ★' if row.get('pareto') is True else ''}"
    if key == "status":
        return str(row.get("status"))
    return cell_text(row, key)


def to_markdown(df: pd.DataFrame, keys: list[str] | None = None) -> str:
    shown = display_frame(df, keys)

    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(esc(h) for h in shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(esc(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def raw_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Machine-readable values: the budget dict spread into ``budget_*`` columns."""
    out = df.drop(columns=[c for c in RAW_DROP if c in df.columns])
    budgets = df["budget"] if "budget" in df.columns else pd.Series([None] * len(df), index=df.index)
    for key in ("target_fps", "latency_budget_ms", "memory_budget_mb"):
        out[f"budget_{key}"] = [b.get(key) if isinstance(b, dict) else None for b in budgets]
    return out


def to_csv(df: pd.DataFrame) -> str:
    raw = raw_frame(df)
    return raw.drop(columns=[c for c in CSV_DROP if c in raw.columns]).to_csv(index=False)


def to_json(df: pd.DataFrame) -> str:
    """A JSON array of row objects; NaN becomes null."""
    return json.dumps(json.loads(raw_frame(df).to_json(orient="records")), indent=2, ensure_ascii=False) + "\n"


def to_html_table(df: pd.DataFrame, keys: list[str] | None = None, css_class: str = "results",
                  plain_status: bool = False) -> str:
    """An HTML <table> (every value escaped); rows carry their status and verdict as CSS classes.

    ``plain_status`` shows the bare status word, for pages that list the reasons beside the table.
    """
    shown = display_frame(df, keys)
    if plain_status and "status" in shown.columns:
        shown["status"] = df["status"].astype(str).values
    keys_shown = [k for k in (keys or [c.key for c in COLUMNS]) if k in df.columns]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in shown.columns)
    body = []
    for (_, src), row in zip(df.iterrows(), shown.itertuples(index=False)):
        classes = f"status-{src.get('status')} verdict-{src.get('verdict') or 'none'}"
        cells = "".join(f'<td class="col-{html.escape(k)}">{html.escape(str(v))}</td>' for k, v in zip(keys_shown, row))
        body.append(f'<tr class="{html.escape(classes)}">{cells}</tr>')
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


NUMBER_LIKE = ("latency_p50_ci", "latency_p99_ci")  # "12.1–12.9": read as numbers, never wrapped
FREE_TEXT = ("vs_curve",)


def _terminal_column(key: str):
    from edgekd.core.tables import LABEL, NUMBER, TEXT, Col

    col = TERMINAL_ONLY.get(key) or BY_KEY[key]
    kind = NUMBER if col.fmt or key in NUMBER_LIKE else TEXT if key in FREE_TEXT else LABEL
    return Col(col.header, kind)


def _terminal_cell(row: pd.Series, key: str):
    """A terminal cell; the status keeps its word and sends the reason and note to footnotes, the verdict
    keeps meets/misses/unknown and sends its detail there."""
    from rich.markup import escape

    from edgekd.core.tables import Footnoted

    label = f"{row.get('candidate')} {row.get('backend')}-{row.get('precision')}"
    if key == "status":
        reason = None if row.get("status") == "ok" else row.get("reason")
        note = row.get("note")
        return Footnoted.of(escape(str(row.get("status"))), *(f"{label}: {t}" for t in (reason, note) if isinstance(t, str) and t))
    if key == "verdict" and not _missing(row.get("verdict")) and row.get("verdict") != "meets":
        return Footnoted.of(escape(str(row.get("verdict"))), f"{label}: {row.get('verdict')}: {row.get('verdict_detail')}")
    return escape(terminal_text(row, key))


def rich_table(df: pd.DataFrame, title: str, footnotes):
    """The terminal table (``edgekd.core.tables.FitTable``): ok rows coloured by verdict, others dimmed;
    reasons, notes and verdict details become numbered footnotes in ``footnotes``."""
    from edgekd.core.tables import FitTable

    keys = terminal_keys(df)
    table = FitTable([_terminal_column(k) for k in keys], title=title, keys=2, footnotes=footnotes)
    styles = {"meets": "green", "misses": "red", "unknown": "yellow"}
    for _, row in df.iterrows():
        style = styles.get(row.get("verdict"), "dim") if row.get("status") == "ok" else "dim"
        table.add_row(*(_terminal_cell(row, key) for key in keys), style=style)
    return table


def print_terminal(df: pd.DataFrame, console) -> None:
    """One table per device for measurements, a separate one for estimates, then the footnotes."""
    from rich.markup import escape

    from edgekd.core.tables import Footnotes

    footnotes = Footnotes()
    for kind, label in (("measurement", "measured"), ("estimate", "ESTIMATES (not measured; never mixed with measurements)")):
        part = df[df["kind"] == kind]
        for device, group in part.groupby("device", sort=True, dropna=False):
            budget = next((b for b in group["budget"] if isinstance(b, dict)), None)
            limits = (f" — budget ≥ {budget['target_fps']:g} FPS, p99 ≤ {budget['latency_budget_ms']:g} ms, "
                      f"peak ≤ {budget['memory_budget_mb']:g} MB") if budget else " — no budget recorded"
            console.print(rich_table(group, escape(f"{device}: {label}{limits}"), footnotes))
    console.print(footnotes)
    console.print("mIoU and Δ in % points; ★ = on the device's accuracy-vs-FPS Pareto front (speeds whose p50 95% "
                  "intervals overlap count as equal); 'p50 not distinguishable from' = those overlaps, never ranked; "
                  "fused = pre/post-processing inside the graph (--embed-pre-post); "
                  "--format md|csv|json|html shows every column", style="dim", markup=False)


def render(df: pd.DataFrame, fmt: str) -> str:
    """The table as text in ``fmt`` (md, csv, json, html); the terminal format is ``print_terminal``."""
    if fmt == "csv":
        return to_csv(df)
    if fmt == "json":
        return to_json(df)
    if fmt == "md":
        parts = []
        for kind, heading in (("measurement", "Measured"), ("estimate", "Estimates (not measured)")):
            part = df[df["kind"] == kind]
            if not part.empty:
                parts.append(f"### {heading}\n\n{to_markdown(part)}")
        return "\n".join(parts)
    if fmt == "html":
        from edgekd.compare.page import table_page

        return table_page(df)
    raise EdgekdError(f"--format {fmt!r} is not one of table, md, csv, json, html")
