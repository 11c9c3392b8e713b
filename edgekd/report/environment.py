"""The environment manifest of each run (host, versions, load, profile hash) as an HTML table.

Speed figures mean little without the machine, its load and the software that produced them
(docs/bench.md: contention moved PyTorch eager from 47 ms to 0.5–1.9 s), so the report shows them for
every run whose rows it contains. Missing facts are shown as "—", not guessed.
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

COLUMNS = ("run", "device · profile sha256", "time (UTC)", "host", "load avg (1/5/15 min) start → end",
           "clocks · power", "edgekd", "backends", "cells")


def _esc(value: Any) -> str:
    return "—" if value in (None, "", [], {}) else html.escape(str(value))


def _load(host: Mapping[str, Any]) -> str:
    def fmt(v: Any) -> str:
        return "/".join(f"{x:g}" for x in v) if isinstance(v, (list, tuple)) and v else "—"

    return f"{fmt(host.get('load_avg_start'))} → {fmt(host.get('load_avg_end'))}"


def _host(host: Mapping[str, Any]) -> str:
    cores = host.get("cores_logical") or host.get("cores")
    mem = host.get("memory_gb")
    parts = [host.get("hostname"), host.get("cpu"), f"{cores} cores" if cores else None,
             f"{mem:g} GB" if isinstance(mem, (int, float)) else None, host.get("os"),
             f"Python {host['python']}" if host.get("python") else None]
    return " · ".join(html.escape(str(p)) for p in parts if p) or "—"


def _clocks(host: Mapping[str, Any]) -> str:
    clocks = host.get("clocks") or {}
    power = host.get("power") or {}
    mhz = clocks.get("cpu_mhz")
    parts = []
    if isinstance(mhz, Mapping) and mhz:
        parts.append(f"{min(mhz.values())}–{max(mhz.values())} MHz")
    if clocks.get("governor"):
        parts.append(f"governor {', '.join(map(str, clocks['governor']))}")
    if power.get("power_mode"):
        parts.append(f"power mode {power['power_mode']}")
    return html.escape(" · ".join(parts)) if parts else html.escape(clocks.get("reason") or "—")


def _edgekd(info: Mapping[str, Any]) -> str:
    version = info.get("version")
    commit = info.get("git_commit")
    dirty = " (dirty)" if info.get("git_dirty") else ""
    return _esc(" ".join(str(p) for p in (version, f"@ {str(commit)[:10]}{dirty}" if commit else None) if p))


def environment_table(manifests: Sequence[Mapping[str, Any]]) -> str:
    """One row per run: what ran where, when, under which load, with which versions."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    rows = []
    for m in manifests:
        host = m.get("host") or {}
        sha = m.get("profile_sha256")
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(m.get("statuses", {}).items()))
        cells = [_esc(m.get("run_id")), f"{_esc(m.get('device'))}<br>{_esc(str(sha)[:12] if sha else None)}",
                 f"{_esc(m.get('first'))} →<br>{_esc(m.get('last'))}", _host(host), html.escape(_load(host)),
                 _clocks(host), _edgekd(m.get("edgekd") or {}), _esc(", ".join(m.get("backends") or [])), _esc(statuses)]
        classes = {0: "nw", 2: "nw", 3: "wrap"}
        rows.append("<tr>" + "".join(f'<td class="{classes.get(i, "")}">{c}</td>' for i, c in enumerate(cells)) + "</tr>")
    return f'<table class="environment"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
