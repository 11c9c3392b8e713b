"""What ``edgekd bench`` shows: a live progress line per cell and stage, then one table of the run."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from edgekd.bench.plan import Cell
from edgekd.core.tables import output_width
from edgekd.profiles import DeviceProfile


def wide_console() -> Console:
    """A console for tables: the terminal's width, or 200 columns when output goes to a file or pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _fmt(value: Any, spec: str = ".1f", dash: str = "—") -> str:
    return dash if value is None else format(value, spec)


def _accuracy_text(acc: dict[str, Any] | None) -> str:
    if not acc or acc.get("miou") is None:
        return "—"
    text = f"{100 * acc['miou']:.1f}"
    if acc.get("delta_miou_vs_fp32") is not None:
        text += f" ({100 * acc['delta_miou_vs_fp32']:+.2f})"
    return text


def results_table(records: list[dict[str, Any]], title: str):
    """The run's summary (``edgekd.core.tables.FitTable``): a failed or unavailable cell's error goes to a
    numbered footnote in full, the status cell keeps its word and the marker."""
    from edgekd.core.tables import NUMBER, Col, FitTable, Footnoted

    cols = [Col("candidate"), Col("backend"), Col("precision used"), Col("input", NUMBER), Col("p50 ms", NUMBER),
            Col("p99 ms", NUMBER), Col("FPS", NUMBER), Col("e2e ms", NUMBER), Col("miss %", NUMBER), Col("peak MB", NUMBER),
            Col("mIoU (Δ)", NUMBER), Col("status")]
    table = FitTable(cols, title=escape(title), keys=2)
    for r in records:
        lat, e2e, paced, backend = r.get("latency_ms") or {}, r.get("e2e") or {}, r.get("paced") or {}, r.get("backend") or {}
        budget = r.get("budget") or {}
        label = str((r.get("candidate") or {}).get("label", "?"))
        error = (str(r.get("error") or "").splitlines() or [""])[0]
        status = r["status"] if r["status"] == "ok" else Footnoted.of(f"[red]{escape(r['status'])}[/]", f"{label}: {error}" if error else None)
        ok = "green" if budget.get("latency_ok") else "yellow"
        table.add_row(
            escape(label), escape(str(backend.get("name"))),
            escape(f"{r.get('precision_requested')} → {backend.get('precision_used') or '—'}"),
            "x".join(map(str, r.get("input_size") or [])),
            _fmt(lat.get("p50"), ".2f"), f"[{ok}]{_fmt(lat.get('p99'), '.2f')}[/]" if lat else "—",
            _fmt(r.get("fps_sync")), _fmt(e2e.get("frame_ms_p50")), _fmt(paced.get("deadline_miss_pct")),
            _fmt(r.get("peak_memory_mb"), ".0f"), _accuracy_text(r.get("accuracy")), status,
        )
    return table


class RichReporter:
    """Live progress (cell n of m, current stage) and the final table, on a rich console."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or wide_console()
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=False)
        self.task = None
        self.cell: Cell | None = None
        self.title = ""

    def start(self, profile: DeviceProfile, run_id: str, path: Path, cells: list[Cell], pending: int, notes: list[str]) -> None:
        rt = profile.real_time
        self.title = f"{profile.name} · run {run_id}"
        self.console.print(f"[bold]{escape(profile.name)}[/] ({escape(profile.description.split('.')[0])}) — budget {rt.latency_budget_ms} ms, "
                           f"{rt.target_fps} FPS, {rt.memory_budget_mb} MB · run [bold]{escape(run_id)}[/] → {escape(str(path))}")
        for note in notes:
            self.console.print(f"[yellow]note:[/] {escape(note)}")
        if len(cells) > pending:
            self.console.print(f"resuming: {len(cells) - pending} of {len(cells)} cells already recorded, {pending} to run")
        self.progress.start()
        self.task = self.progress.add_task("starting", total=pending)

    def cell_started(self, cell: Cell) -> None:
        self.cell = cell
        self.progress.update(self.task, description=escape(f"{cell.label} · starting"))

    def stage(self, name: str) -> None:
        label = self.cell.label if self.cell else "run"
        self.progress.update(self.task, description=escape(f"{label} · {name}"))

    def cell_done(self, cell: Cell, record: dict[str, Any]) -> None:
        self.progress.advance(self.task)
        lat = record.get("latency_ms") or {}
        line = f"{cell.label}: {record['status']}"
        if lat:
            line += f", p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms"
        elif record.get("error"):
            line += f" — {str(record['error']).splitlines()[0][:100]}"
        self.progress.console.print(line, markup=False, highlight=False)

    def finish(self, records: list[dict[str, Any]]) -> None:
        self.progress.update(self.task, description="done")
        self.progress.stop()
        if records:
            self.console.print(results_table(records, self.title), width=output_width(self.console))


class FleetReporter:
    """One device's stream of a fleet run: plain lines prefixed with the device name.

    Several devices report at once, so no live progress bar (rich cannot draw one per thread);
    a shared lock keeps each line whole.
    """

    def __init__(self, device: str, lock, console: Console | None = None) -> None:
        self.device, self.lock = device, lock
        self.console = console or wide_console()
        self.records: list[dict[str, Any]] = []

    def _line(self, text: str) -> None:
        with self.lock:
            self.console.print(f"[{self.device}] {text}", markup=False, highlight=False)

    def start(self, profile: DeviceProfile, run_id: str, path: Path, cells: list[Cell], pending: int, notes: list[str]) -> None:
        done = len(cells) - pending
        self._line(f"run {run_id} → {path}: {len(cells)} cell(s), {pending} to run" + (f", {done} already recorded" if done else ""))
        for note in notes:
            self._line(f"note: {note}")

    def cell_started(self, cell: Cell) -> None:
        self._line(f"{cell.label}: starting")

    def stage(self, name: str) -> None: ...

    def cell_done(self, cell: Cell, record: dict[str, Any]) -> None:
        lat = record.get("latency_ms") or {}
        line = f"{cell.label}: {record['status']}"
        if lat:
            line += f", p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms"
        elif record.get("error"):
            line += f" — {str(record['error']).splitlines()[0][:120]}"
        self._line(line)

    def finish(self, records: list[dict[str, Any]]) -> None:
        self.records = records
