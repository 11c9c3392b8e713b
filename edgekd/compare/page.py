"""The static HTML page shell (inline CSS, no script) shared by ``compare --format html`` and the report.

It sits in ``compare`` because the comparison table needs it and ``report`` is built on top of
``compare`` (docs/design.md): the report imports this shell, never the other way round.
"""
from __future__ import annotations

import html

import pandas as pd

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}
main{max-width:1500px;margin:0 auto;padding:24px 32px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #d9dde3;padding-bottom:4px}
h3{font-size:15px;margin:20px 0 6px}.meta{color:#5b6472;font-size:12.5px}
.scroll{overflow-x:auto;background:#fff;border:1px solid #d9dde3;border-radius:6px}
table{border-collapse:collapse;font-size:12.5px;width:100%}td{white-space:nowrap}
th{background:#eef1f5;text-align:left;padding:6px 8px;position:sticky;top:0;border-bottom:1px solid #cfd5dd}
td{padding:5px 8px;border-bottom:1px solid #edf0f3;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafbfc}
tr.status-failed td,tr.status-unavailable td{color:#8a919c;font-style:italic}
tr.verdict-meets td.col-verdict{color:#1f7a3a;font-weight:600}tr.verdict-misses td.col-verdict{color:#b3263a;font-weight:600}
tr.verdict-unknown td.col-verdict{color:#8a6d00}td.col-pareto{text-align:center}
table.environment td{white-space:normal;vertical-align:top}table.environment td.nw{white-space:nowrap}
td.wrap{min-width:220px}
.pick{background:#fff;border-left:5px solid #2a9d4b;padding:10px 14px;margin:10px 0;border-radius:4px}
.pick.none{border-left-color:#d1495b}.pick ul{margin:6px 0 0 18px;padding:0;color:#5b6472}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:14px;margin:14px 0}
figure{background:#fff;border:1px solid #d9dde3;border-radius:6px;margin:0;padding:10px}
figure img{max-width:100%;height:auto;display:block}figcaption{font-size:12.5px;color:#5b6472;max-width:860px;margin-top:6px}
.estimate{border:2px dashed #b08900;border-radius:6px;padding:0 12px 12px;background:#fffdf3}
.warn{color:#8a6d00}
"""


def wrap(table: str) -> str:
    """A table inside a horizontally scrolling box (wide tables never widen the page)."""
    return f'<div class="scroll">{table}</div>'


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document around ``body``."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
            f"<body><main>\n{body}\n</main></body></html>\n")


def table_page(df: pd.DataFrame) -> str:
    """``edgekd compare --format html``: the comparison table alone as a standalone page."""
    from edgekd.compare.format import to_html_table

    return page("edgekd compare", "<h1>edgekd compare</h1>" + wrap(to_html_table(df)))
