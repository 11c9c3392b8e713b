"""Read bench result records (``bench_results/<device>/<run-id>.jsonl``) and flatten each into one row.

Parsing of the JSONL files is the results store's (``edgekd.results.read_records``); this module
only decides *which* records make the table and *where in a record* each column comes from.
The record paths read are listed once, in ``flatten``; docs/compare.md repeats them for the
bench side. A cell's figures are taken from its latest ``ok`` row: a later failed re-run does not
hide a good measurement, but it is noted beside it.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from edgekd.errors import EdgekdError
from edgekd.results import read_records

SUFFIX = ".jsonl"
MEASUREMENT, ESTIMATE = "measurement", "estimate"
# Columns that hold a figure; a failed/unavailable row never carries any of them.
NUMERIC_COLUMNS = (
    "params", "macs", "miou", "delta_miou_vs_nokd", "delta_miou_vs_fp32", "boundary_f",
    "distillation_factor", "relative_error", "teacher_student_kl", "probability_correlation",
    "teacher_miou", "student_miou", "latency_min_ms", "latency_p50_ms", "latency_p90_ms",
    "latency_p99_ms", "latency_max_ms", "latency_mean_ms", "latency_p50_lo_ms", "latency_p50_hi_ms",
    "latency_p99_lo_ms", "latency_p99_hi_ms", "fps", "throughput_fps", "e2e_ms",
    "deadline_miss_pct", "peak_mb", "model_mb", "energy_mj", "throttle_ratio",
)


def collect_files(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The ``.jsonl`` files named, or found (recursively) under the folders named; sorted, unique."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(path.rglob(f"*{SUFFIX}")))
        elif path.is_file():
            files.append(path)
        else:
            raise EdgekdError(f"results path {str(path)!r} does not exist; pass a .jsonl file or a folder such as bench_results/")
    unique = sorted(set(files))
    if not unique:
        raise EdgekdError(f"no {SUFFIX} result files under {', '.join(map(str, inputs))}; run `edgekd bench --device NAME` first")
    return unique


ESTIMATE_KEYS = ("device", "backend", "precision", "latency_ms")


def row_problem(record: Any) -> str | None:
    """Why a row cannot be shown (None when it can): a bench record is checked against the keys of
    its own ``schema_version`` (``edgekd.results.validate_record``); an estimate needs its
    device, backend, precision and a numeric latency."""
    from edgekd.results.schema import RecordError, validate_record

    if not isinstance(record, Mapping):
        return f"a JSON {type(record).__name__}, not an object"
    if record.get("kind") == ESTIMATE:
        missing = [k for k in ESTIMATE_KEYS if k not in record]
        if missing:
            return f"estimate lacks key(s) {missing}"
        return None if number(record.get("latency_ms")) is not None else "estimate latency_ms is not a number"
    try:
        validate_record(dict(record))
    except (RecordError, TypeError, AttributeError) as err:
        return str(err) or type(err).__name__
    return None


def load_records(sources: Iterable[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Records from paths (files or folders) and/or already-parsed dicts, with the reader's warnings.

    A row that does not follow the results schema (e.g. ``{"foo": 1}``) is skipped, never shown as
    a junk row; one warning counts them and names the first few with their reason.
    """
    records: list[dict[str, Any]] = []
    warnings: list[str] = []
    invalid: list[str] = []
    total = 0

    def keep(record: Any, where: str) -> None:
        nonlocal total
        total += 1
        problem = row_problem(record)
        if problem:
            invalid.append(f"{where}: {problem}")
        else:
            records.append(dict(record))

    paths: list[Any] = []
    for i, item in enumerate(sources):
        if isinstance(item, Mapping):
            keep(item, f"record {i}")
        else:
            paths.append(item)
    for path in collect_files(paths) if paths else []:
        rows, warns = read_records(path)
        for n, row in enumerate(rows, 1):
            keep(row, f"{path} row {n}")
        warnings.extend(warns)
    if invalid:
        shown = "; ".join(invalid[:3]) + (f"; … {len(invalid) - 3} more" if len(invalid) > 3 else "")
        warnings.insert(0, f"SKIPPED {len(invalid)} of {total} result rows that do not follow the results schema "
                           f"(this edgekd reads versions 1-2): {shown}")
    return records, warnings


def get(record: Mapping[str, Any] | None, dotted: str) -> Any:
    """``record["a"]["b"]`` for ``"a.b"``; ``None`` when any step is absent or not a mapping."""
    value: Any = record
    for key in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def number(value: Any) -> float | None:
    """A finite float, or ``None`` (absent, non-numeric, NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def candidate_name(record: Mapping[str, Any]) -> str:
    """What the candidate is called: the checkpoint's stem (``candidate.checkpoint``), else its artifact's folder."""
    cand = record.get("candidate") or {}
    if isinstance(cand, str):
        return cand
    if cand.get("checkpoint"):
        return Path(str(cand["checkpoint"])).stem
    if cand.get("artifact_dir"):
        path = Path(str(cand["artifact_dir"]))
        return path.parent.name or path.name
    return str(cand.get("label") or cand.get("arch") or "?")


def kd_method(candidate: Mapping[str, Any]) -> str | None:
    """``supervised``, ``imported``, or the distillation loss terms other than CE (``kd+cwd``)."""
    method = candidate.get("distillation_method")
    losses = [k for k in (get(candidate, "distillation.losses") or {}) if k != "ce"]
    if method in (None, "distill") and losses:
        return "+".join(losses)
    return method


def teacher_name(candidate: Mapping[str, Any]) -> str | None:
    """The teacher architecture(s) when the record names them, else a short checkpoint hash per teacher."""
    teachers = get(candidate, "distillation.teachers") or []
    names = [str(t.get("arch") or (t.get("sha256") or "?")[:8]) for t in teachers if isinstance(t, Mapping)]
    if names:
        return "+".join(names)
    shas = get(candidate, "distillation.teacher_sha256") or []
    shas = [shas] if isinstance(shas, str) else shas
    return "+".join(f"sha256:{s[:8]}" for s in shas) or None


def _identity(record: Mapping[str, Any]) -> dict[str, Any]:
    cand = _mapping(record.get("candidate"))
    size = record.get("input_size")
    return {
        "device": get(record, "device.name") or _text(record.get("device")), "kind": record.get("kind") or MEASUREMENT,
        "candidate": candidate_name(record), "arch": cand.get("arch"), "method": kd_method(cand),
        "teacher": teacher_name(cand), "backend": get(record, "backend.name") or _text(record.get("backend")),
        "precision": record.get("precision_requested") or _text(record.get("precision")),
        "precision_used": get(record, "backend.precision_used"),
        "backend_version": get(record, "backend.version"),
        "input": f"{size[0]}x{size[1]}" if isinstance(size, (list, tuple)) and len(size) == 2 else None,
        "status": record.get("status"), "reason": record.get("error"),
        "run_id": record.get("run_id"), "timestamp": record.get("timestamp"),
        "cell_key": record.get("cell_key"), "checkpoint_sha256": cand.get("checkpoint_sha256"),
        "fused": _fused(record),
    }


def _fused(record: Mapping[str, Any]) -> bool:
    """An ``--embed-pre-post`` artifact (its row carries the frame -> class-map ``io_contract``)."""
    return isinstance(record.get("io_contract"), Mapping)


def _figures(record: Mapping[str, Any]) -> dict[str, float | None]:
    """Every numeric column, read from its one place in the record (see docs/compare.md)."""
    cand = _mapping(record.get("candidate"))
    kd = get(cand, "checkpoint_metrics.kd") or {}
    lat = _mapping(record.get("latency_ms"))
    return {
        "params": number(cand.get("params")), "macs": number(cand.get("macs")),
        "miou": number(get(record, "accuracy.miou")), "delta_miou_vs_nokd": None,
        "delta_miou_vs_fp32": number(get(record, "accuracy.delta_miou_vs_fp32")),
        "boundary_f": number(get(record, "accuracy.boundary_f")),
        **{k: number(kd.get(k)) for k in ("distillation_factor", "relative_error", "teacher_student_kl",
                                          "probability_correlation", "teacher_miou", "student_miou")},
        **{f"latency_{k}_ms": number(lat.get(k)) for k in ("min", "p50", "p90", "p99", "max", "mean")},
        **_intervals(lat),
        "fps": number(record.get("fps" if record.get("kind") == ESTIMATE else "fps_sync")),
        "throughput_fps": number(get(record, "throughput.fps")),
        "e2e_ms": number(get(record, "e2e.frame_ms_p50")),
        "deadline_miss_pct": number(get(record, "paced.deadline_miss_pct")),
        "peak_mb": number(record.get("peak_memory_mb")), "model_mb": number(record.get("model_mb")),
        "energy_mj": number(get(record, "energy.energy_per_frame_mj")),
        "throttle_ratio": number(get(record, "sustained.throttle_ratio")),
    }


def _intervals(lat: Mapping[str, Any]) -> dict[str, float | None]:
    """``latency_ms.p50_ci`` / ``p99_ci`` ([low, high], a side None when unbounded; schema v2) as columns."""
    out: dict[str, float | None] = {}
    for q in ("p50", "p99"):
        ci = lat.get(f"{q}_ci")
        ci = ci if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)
        out[f"latency_{q}_lo_ms"], out[f"latency_{q}_hi_ms"] = number(ci[0]), number(ci[1])
    return out


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _estimate_latency(record: Mapping[str, Any]) -> dict[str, float | None]:
    """An ``edgekd.estimate`` Estimate has one latency figure, not a distribution: it fills p50 = p90 = p99."""
    ms = number(record.get("latency_ms"))
    return {f"latency_{k}_ms": ms for k in ("p50", "p90", "p99", "mean")} if ms is not None else {}


def flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """One table row; a row whose status is not ``ok`` keeps its identity and reason, and no figure.

    Besides bench records, ``edgekd.estimate.Estimate.to_dict()`` rows are accepted (``kind ==
    "estimate"``; ``device``/``backend``/``candidate`` may be plain strings, status defaults to ok).
    """
    row = {**_identity(record), **_figures(record)}
    if row["kind"] == ESTIMATE:
        row.update(_estimate_latency(record))
        row["status"] = row["status"] or "ok"
    if row["status"] != "ok":
        row.update({k: None for k in NUMERIC_COLUMNS})
        row["reason"] = row["reason"] or f"status {row['status']!r} without an error message"
    row["budget"] = record_budget(record)
    row["sustained_fps"] = sustained_series(record) if row["status"] == "ok" else None
    row["note"] = None
    return row


def record_budget(record: Mapping[str, Any]) -> dict[str, float] | None:
    """The real-time budget the run was measured against (``device.real_time``), if the record has it."""
    block = get(record, "device.real_time")
    keys = ("target_fps", "latency_budget_ms", "memory_budget_mb")
    if isinstance(block, Mapping) and all(number(block.get(k)) for k in keys):
        return {k: float(block[k]) for k in keys}
    return None


def sustained_series(record: Mapping[str, Any]) -> list[list[float]] | None:
    """[[seconds since start at window end, FPS in the window], ...] from ``sustained.windows``."""
    windows = get(record, "sustained.windows")
    if not isinstance(windows, list) or not windows:
        return None
    series, t = [], 0.0
    for w in windows:
        seconds, fps = number(get(w, "seconds")), number(get(w, "fps"))
        if seconds is None or fps is None:
            return None
        t += seconds
        series.append([t, fps])
    return series


def cell_identity(row: Mapping[str, Any]) -> tuple:
    """Rows shown as one: same device, checkpoint, backend, precision, input size and fused or not
    (an ``--embed-pre-post`` artifact is shown beside the plain one, not in its place).

    Deliberately coarser than the bench's ``cell_key`` (which also hashes the artifact manifest):
    a re-exported artifact of the same checkpoint replaces the old row instead of adding one.
    """
    return (row["kind"], row["device"], row["checkpoint_sha256"] or row["candidate"], row["backend"],
            row["precision"], row["input"], bool(row.get("fused")))


def latest_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell (``cell_identity``): the latest ``ok`` row, noting a newer failure; else the latest row."""
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        cells.setdefault(cell_identity(row), []).append(row)
    chosen = []
    for group in cells.values():
        group.sort(key=lambda r: str(r.get("timestamp") or ""))
        ok = [r for r in group if r["status"] == "ok"]
        row = dict(ok[-1] if ok else group[-1])
        newest = group[-1]
        if ok and newest is not ok[-1]:
            row["note"] = f"a later run ({newest['run_id']}) ended {newest['status']}: {newest['reason']}"
        chosen.append(row)
    return chosen


def run_manifests(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The environment of each bench run (host, versions, load, profile hash): one entry per run id.

    Estimates ran nowhere, so they have no environment and no entry.
    """
    runs: dict[str, dict[str, Any]] = {}
    for rec in records:
        if rec.get("kind") == ESTIMATE:
            continue
        run_id = str(rec.get("run_id") or "?")
        entry = runs.setdefault(run_id, {
            "run_id": run_id, "device": get(rec, "device.name"),
            "profile_sha256": get(rec, "device.profile_sha256"), "host": rec.get("host") or {},
            "edgekd": rec.get("edgekd") or {}, "backends": set(), "statuses": {}, "first": rec.get("timestamp"),
            "last": rec.get("timestamp"),
        })
        name, version = get(rec, "backend.name"), get(rec, "backend.version")
        if name:
            entry["backends"].add(f"{name} {version}" if version else str(name))
        status = str(rec.get("status"))
        entry["statuses"][status] = entry["statuses"].get(status, 0) + 1
        stamp = rec.get("timestamp")
        if stamp and (not entry["first"] or stamp < entry["first"]):
            entry["first"] = stamp
        if stamp and (not entry["last"] or stamp > entry["last"]):
            entry["last"] = stamp
    out = []
    for entry in sorted(runs.values(), key=lambda e: (str(e["device"]), e["run_id"])):
        out.append({**entry, "backends": sorted(entry["backends"])})
    return out
