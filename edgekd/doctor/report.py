"""Rendering a DoctorReport for people: a findings table and, after ``--fix``, parity and speed."""
from __future__ import annotations

from typing import Any

from edgekd.doctor.findings import DoctorReport

STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render(report: DoctorReport, console: Any) -> None:
    from rich.markup import escape
    from rich.text import Text

    from edgekd.core.tables import Col, FitTable

    facts = report.facts
    head = f"[bold]edgekd doctor[/] {escape(str(report.target))} ({escape(str(report.kind))}"
    if facts.get("arch"):
        head += f", {escape(str(facts['arch']))}"
    if facts.get("params"):
        head += f", {facts['params']:,} params"
    console.print(head + f") on {escape(', '.join(report.devices))}")
    for size, g in (facts.get("graphs") or {}).items():
        console.print(f"  ONNX graph at {size}: {g['nodes']} nodes, {g['gflops']:.2f} GFLOPs")
    table = FitTable([Col("severity"), Col("device"), Col("finding")], keys=2, show_lines=True)
    for f in report.sorted_findings():
        cell = Text(f.what, style="bold")
        cell.append(f"\n[{f.code}] why: {f.why_it_matters}", style="default")
        cell.append(f"\nfix: {f.fix}", style="green")
        table.add_row(Text(f.severity, style=STYLE[f.severity]), Text(f.device or "all"), cell)
    if report.findings:
        console.print(table)
    counts = {s: sum(f.severity == s for f in report.findings) for s in ("error", "warning", "info")}
    console.print(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info — exit code {report.exit_code}")
    if report.fix:
        render_fix(report.fix, console)


def render_fix(fix: dict[str, Any], console: Any) -> None:
    from rich.markup import escape

    from edgekd.core.tables import NUMBER, Col, FitTable

    p = fix["parity"]
    console.print(f"\n[bold]--fix[/] wrote {escape(str(fix['out']))}: {fix['subnormals_flushed']:,} subnormal values flushed to zero")
    console.print(f"  parity on {p['inputs']}: argmax agreement {p['argmax_agreement'] * 100:.3f}%, "
                  f"max |Δlogit| {p['max_abs_logit_diff']:.2e}")
    table = FitTable([Col("runtime"), Col("before", NUMBER), Col("after", NUMBER), Col("speed-up", NUMBER), Col("load avg (1/5/15 min)")],
                     title=f"speed on this machine, 1×3×{fix['input_size'][0]}×{fix['input_size'][1]}, "
                           f"{fix['threads']} threads, denormal flushing off (median ms of interleaved rounds)")
    for s in fix["speed"].values():
        table.add_row(s["runtime"], f"{s['before']['median_ms']:.1f}", f"{s['after']['median_ms']:.1f}", f"{s['speedup']:.1f}×",
                      " ".join(map(str, s["load_avg"]["start"] or [])))
    console.print(table)
