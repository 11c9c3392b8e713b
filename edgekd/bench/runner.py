"""Run the benchmark matrix of a device profile: one fresh worker per cell, one durable row per cell.

``run_bench`` plans the cells, resumes a run if asked (skipping cells already in its file),
computes the PyTorch FP32 reference accuracy once per checkpoint (cached beside the run file),
then runs each pending cell through the target (this machine or ssh) and appends its record
the moment it ends. A failing cell is recorded as ``failed`` and the run goes on.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from edgekd import __version__
from edgekd.bench.accuracy import add_reference_delta
from edgekd.bench.cellspec import AccuracySpec, CellSpec, E2ESpec, PacedSpec, SensorSpec, SustainedSpec
from edgekd.bench.plan import MANIFEST, Cell, candidate_block, discover_artifacts, find_reference, plan_cells
from edgekd.bench.process import REPO_ROOT, LocalTarget, WorkerOutcome
from edgekd.core.budget import Budget, budget_checks
from edgekd.core.timing import LoopPolicy, WarmupPolicy
from edgekd.errors import EdgekdError
from edgekd.paths import cache_dir
from edgekd.profiles import DeviceProfile, runtime_options_for
from edgekd.results.schema import make_record
from edgekd.results.store import ResultStore, check_writable, completed_keys, new_run_id, resolve_resume, run_path

MEASURED = ("host", "backend", "input_size", "batch", "warmup", "iterations", "timed_s", "stopped_by", "latency_ms",
            "fps_sync", "throughput", "e2e", "paced", "load_s", "first_inference_ms", "memory", "peak_memory_mb",
            "model_mb", "accuracy", "sustained", "energy", "thermal", "noise", "io_contract", "timed_region")


@dataclass(frozen=True)
class BenchOptions:
    """Measurement budgets. Defaults suit a real run; tests pass sub-second durations."""

    duration_s: float = 10.0
    min_iters: int = 50
    warmup_max_s: float = 10.0
    warmup_window: int = 10
    warmup_cv: float = 0.05
    e2e_s: float = 5.0
    paced_s: float = 5.0
    throughput_s: float = 5.0
    sustained_s: float = 0.0
    window_s: float = 10.0
    data: Path | None = None
    split: str = "val"
    accuracy_images: int | None = None
    cell_timeout_s: float | None = None
    retry_failed: bool = False

    def timeout_s(self) -> float:
        """Per-cell budget: generous multiples of the planned work (a hung runtime must not stall the run)."""
        if self.cell_timeout_s:
            return self.cell_timeout_s
        planned = self.duration_s + self.warmup_max_s + self.e2e_s + self.paced_s + self.throughput_s
        accuracy = 20 + 5 * (self.accuracy_images or 200) if self.data else 0
        return 120 + 3 * planned + 1.5 * self.sustained_s + accuracy


class Reporter(Protocol):
    def start(self, profile: DeviceProfile, run_id: str, path: Path, cells: list[Cell], pending: int, notes: list[str]) -> None: ...
    def cell_started(self, cell: Cell) -> None: ...
    def stage(self, name: str) -> None: ...
    def cell_done(self, cell: Cell, record: dict[str, Any]) -> None: ...
    def finish(self, records: list[dict[str, Any]]) -> None: ...


class SilentReporter:
    def start(self, *args: Any) -> None: ...
    def cell_started(self, cell: Cell) -> None: ...
    def stage(self, name: str) -> None: ...
    def cell_done(self, cell: Cell, record: dict[str, Any]) -> None: ...
    def finish(self, records: list[dict[str, Any]]) -> None: ...


@dataclass
class RunSummary:
    run_id: str
    path: Path
    written: list[dict[str, Any]] = field(default_factory=list)
    skipped_done: int = 0
    notes: list[str] = field(default_factory=list)


def edgekd_block() -> dict[str, Any]:
    """edgekd version and the git commit of its sources (read-only git calls; None outside a checkout)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"version": __version__, "git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def device_block(profile: DeviceProfile, target: Any) -> dict[str, Any]:
    return {
        "name": profile.name, "profile_sha256": profile.sha256, "profile_path": profile.path,
        "connection": {"type": target.kind, "address": target.describe()}, "preferred_backend": profile.backend,
        "real_time": asdict(profile.real_time), "camera": asdict(profile.camera), "runtime": asdict(profile.runtime),
        "hardware": asdict(profile.hardware),
    }


def budget_block(record: dict[str, Any], profile: DeviceProfile) -> dict[str, Any] | None:
    """Does this cell meet the device's real-time budget? (``edgekd.core.budget``: p99 inference,
    synchronous FPS, peak RSS, and the end-to-end frame p50 when measured — the compare verdict's check)."""
    if record["status"] != "ok":
        return None
    figures = {"fps": record["fps_sync"], "latency_p99_ms": (record["latency_ms"] or {}).get("p99"),
               "peak_mb": record["peak_memory_mb"], "e2e_ms": (record["e2e"] or {}).get("frame_ms_p50")}
    ok = budget_checks(figures, Budget.from_profile(profile))
    return {
        **asdict(profile.real_time),
        "latency_ok": bool(ok["latency_p99_ms"]),
        "fps_ok": bool(ok["fps"]),
        "e2e_ok": ok["e2e_ms"],
        "memory_ok": bool(ok["peak_mb"]),
    }


def build_spec(cell: Cell, profile: DeviceProfile, opts: BenchOptions, target: Any) -> CellSpec:
    """What the worker measures for ``cell``: the profile's runtime options, camera and budgets, ``opts``' durations."""
    cam, rt = profile.camera, profile.real_time
    accuracy = AccuracySpec(target.map_path(opts.data), opts.split, opts.accuracy_images) if opts.data else None
    return CellSpec(
        mode="cell", backend=cell.backend, artifact_dir=target.map_path(cell.artifact_dir),
        runtime_options=runtime_options_for(profile, cell.backend), input_size=tuple(cell.input_size),
        camera_hw=(cam.height, cam.width),
        timing=LoopPolicy(duration_s=opts.duration_s, min_iters=opts.min_iters, hard_limit_s=max(120.0, 6 * opts.duration_s)),
        warmup=WarmupPolicy(window=opts.warmup_window, cv_threshold=opts.warmup_cv, max_seconds=opts.warmup_max_s),
        e2e=E2ESpec(opts.e2e_s) if opts.e2e_s > 0 else None,
        paced=PacedSpec(rt.target_fps, 1000.0 / rt.target_fps, opts.paced_s) if opts.paced_s > 0 else None,
        throughput_s=opts.throughput_s,
        sustained=SustainedSpec(opts.sustained_s, opts.window_s) if opts.sustained_s > 0 else None,
        sensors=SensorSpec(**asdict(profile.sensors)), accuracy=accuracy,
    )


def assemble(run_id: str, cell: Cell, profile: DeviceProfile, target: Any, outcome: WorkerOutcome, timeout_s: float,
             reference: dict[str, Any] | None, opts: BenchOptions, edgekd: dict[str, Any]) -> dict[str, Any]:
    """The result record of one cell from the worker's outcome (or from its failure)."""
    result = outcome.result or {}
    failure = outcome.failure(timeout_s)
    parts = {k: result.get(k) for k in MEASURED}
    if opts.data:
        parts["accuracy"] = add_reference_delta(parts["accuracy"], reference)
    else:
        parts["accuracy"] = {"miou": None, "reason": "no --data DIR given"}
    if not opts.sustained_s:
        parts["sustained"] = {"reason": "not requested (--sustained S)"}
    parts["backend"] = parts["backend"] or {"name": cell.backend, "precision_used": None}
    parts["input_size"] = parts["input_size"] or list(cell.input_size)
    record = make_record(
        run_id=run_id, timestamp=datetime.now(timezone.utc).isoformat(timespec="seconds"), cell_key=cell.key,
        device=device_block(profile, target), edgekd=edgekd, candidate=candidate_block(cell),
        precision_requested=cell.precision, status="failed" if failure else result.get("status", "failed"),
        error=failure or result.get("error"), **parts,
    )
    record["budget"] = budget_block(record, profile)
    return record


def _reference_from_checkpoint(cell: Cell, reporter: Reporter) -> Path | None:
    """A PyTorch FP32 artifact exported now from the cell's source checkpoint, when that file is
    on this machine and still has the recorded sha256; cached (``$EDGEKD_CACHE/references``)."""
    from edgekd.checkpoint import sha256_file
    from edgekd.export import export_checkpoint

    source = Path(str((cell.manifest.get("source") or {}).get("checkpoint") or ""))
    if not source.is_file() or sha256_file(source) != cell.checkpoint_sha256:
        return None
    size = f"{cell.input_size[0]}x{cell.input_size[1]}"
    target = cache_dir() / "references" / f"{cell.checkpoint_sha256[:16]}-{size}" / source.stem / "torch-fp32"
    if not (target / MANIFEST).is_file():
        reporter.stage(f"exporting a PyTorch FP32 reference from {source.name}")
        try:
            export_checkpoint(source, backends="torch", precisions="fp32", out_dir=target.parent.parent,
                              input_size=tuple(cell.input_size), parity_images=0, force=True)
        except Exception as err:  # a reference is a bonus: the rows go on without Δ FP32
            reporter.stage(f"no PyTorch FP32 reference from {source.name}: {err}")
            return None
    return target


def _references(cells: list[Cell], opts: BenchOptions, cache_path: Path, reporter: Reporter) -> dict[str, dict[str, Any]]:
    """PyTorch FP32 accuracy per checkpoint sha and input size, computed once on this machine and cached beside the run."""
    cache: dict[str, dict[str, Any]] = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    if not opts.data:
        return cache
    local = LocalTarget()
    for cell in cells:
        sha, key = cell.checkpoint_sha256, cell.reference_key  # one reference per checkpoint and input size
        if not sha or key in cache:
            continue
        ref_dir = find_reference(cell, cells) or _reference_from_checkpoint(cell, reporter)
        if ref_dir is None:
            cache[key] = {"miou": None, "reason": f"no torch-fp32 artifact of checkpoint {sha[:12]} at {cell.input_size[0]}x{cell.input_size[1]}, and none could be "
                          "made from its checkpoint file (missing, changed or not exportable here); export one with --backend torch"}
        else:
            reporter.stage(f"FP32 reference accuracy ({ref_dir.parent.name})")
            spec = CellSpec(mode="accuracy", artifact_dir=str(ref_dir),
                            accuracy=AccuracySpec(str(Path(opts.data).resolve()), opts.split, opts.accuracy_images))
            outcome = local.run_worker(spec, opts.timeout_s(), reporter.stage)
            res = outcome.result or {}
            acc = res.get("accuracy")
            cache[key] = acc if acc and res.get("status") == "ok" else {"miou": None, "reason": "reference failed: " + str(
                outcome.failure(opts.timeout_s()) or res.get("error"))}
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1, allow_nan=False, default=str))
        os.replace(tmp, cache_path)
    return cache


def _check_classes(cells: list[Cell], opts: BenchOptions) -> None:
    """Every artifact must predict the ``--data`` dataset's classes (or those plus its void label):
    refused before any cell runs, as an mIoU under another label set would be a wrong number."""
    from edgekd.bench.accuracy import open_split
    from edgekd.metrics import check_class_count

    info = open_split(str(opts.data), opts.split).info
    for cell in cells:
        check_class_count(int(cell.manifest.get("num_classes", -1)), info.num_classes, info.ignore_index,
                          model=f"artifact {cell.artifact_dir}", dataset=f"{info.name} ({opts.data})")


def run_bench(profile: DeviceProfile, artifact_paths: list[str | Path], opts: BenchOptions, out_dir: str | Path, *,
              resume: bool = False, run_id: str | None = None, target: Any = None,
              reporter: Reporter | None = None) -> RunSummary:
    """Benchmark every cell of ``artifact_paths`` on ``profile``; rows go to ``out_dir/<device>/<run-id>.jsonl``."""
    reporter = reporter or SilentReporter()
    if opts.data is not None and not Path(opts.data).is_dir():
        raise EdgekdError(f"--data {opts.data}: not a folder; pass a dataset folder (CamVid layout or images/labels)")
    cells, notes = plan_cells(profile, discover_artifacts(list(artifact_paths)))
    if not cells:
        raise EdgekdError(f"no artifact to benchmark on {profile.name}: " + ("; ".join(notes) or "none found"))
    if opts.data is not None:
        _check_classes(cells, opts)
    out_dir = Path(out_dir)
    check_writable(out_dir / profile.name)  # a read-only results folder is found now, not after the first cell
    run_id = resolve_resume(out_dir, profile.name, run_id) if resume else (run_id or new_run_id())
    if not resume and run_path(out_dir, profile.name, run_id).exists():
        raise EdgekdError(f"run {run_id!r} already exists under {out_dir / profile.name}; pass --resume {run_id} "
                          "to add its missing cells, or choose another --run-id")
    store = ResultStore(run_path(out_dir, profile.name, run_id))
    previous, warnings = store.read()
    done = completed_keys(previous, opts.retry_failed) if resume else set()
    pending = [c for c in cells if c.key not in done]
    summary = RunSummary(run_id, store.path, skipped_done=len(cells) - len(pending), notes=notes + warnings)
    reporter.start(profile, run_id, store.path, cells, len(pending), summary.notes)
    target = target or LocalTarget()
    if pending:
        target.check()
        target.prepare(sorted({c.artifact_dir for c in pending}), Path(opts.data).resolve() if opts.data else None)
    references = _references(pending, opts, store.path.with_suffix(".reference.json"), reporter)
    edgekd = edgekd_block()
    for cell in pending:
        reporter.cell_started(cell)
        outcome = target.run_worker(build_spec(cell, profile, opts, target), opts.timeout_s(), reporter.stage)
        record = assemble(run_id, cell, profile, target, outcome, opts.timeout_s(),
                          references.get(cell.reference_key or ""), opts, edgekd)
        store.append(record)
        summary.written.append(record)
        reporter.cell_done(cell, record)
    reporter.finish(summary.written)
    return summary
