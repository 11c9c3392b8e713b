"""Append-only JSONL result files: ``bench_results/<device>/<run-id>.jsonl``.

A row is written, flushed and fsynced the moment its cell ends, so a run killed at any point
keeps every finished cell and ``--resume`` continues it. Rows are never rewritten: re-running a
cell appends a newer row and readers take the last row per cell key. A line cut short by a kill
is skipped on reading (with a warning) and terminated before the next append.
"""
from __future__ import annotations

import json
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from edgekd.errors import EdgekdError
from edgekd.results.schema import clean_json, validate_record

SUFFIX = ".jsonl"


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and unique: UTC time to the second plus 6 random hex digits."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def run_path(out_dir: Path, device: str, run_id: str) -> Path:
    return Path(out_dir) / device / f"{run_id}{SUFFIX}"


class ResultStore:
    """One run's JSONL file; ``append`` is durable when it returns."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        validate_record(record)
        line = json.dumps(clean_json(record), ensure_ascii=False, allow_nan=False)
        new_file = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "ab") as f:
            if not new_file and f.tell() > 0 and not _ends_with_newline(self.path):
                f.write(b"\n")  # terminate a line cut short by a killed writer
            f.write(line.encode("utf-8") + b"\n")
            f.flush()
            os.fsync(f.fileno())
        if new_file:
            _fsync_dir(self.path.parent)

    def read(self) -> tuple[list[dict[str, Any]], list[str]]:
        return read_records(self.path)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _fsync_dir(folder: Path) -> None:
    """Make the new file's directory entry durable too (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All decodable rows of a run file, and warnings for lines that were skipped."""
    records, warnings = [], []
    path = Path(path)
    if not path.exists():
        return records, warnings
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                warnings.append(f"{path}:{number}: skipped an incomplete or corrupt line (a run killed mid-write?)")
                continue
            if isinstance(row, dict):
                records.append(row)
    return records, warnings


def latest_by_key(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last row per ``cell_key`` (rows are appended in time order)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in records:
        if row.get("cell_key"):
            latest[row["cell_key"]] = row
    return latest


def completed_keys(records: Iterable[dict[str, Any]], retry_failed: bool = False) -> set[str]:
    """Cell keys that ``--resume`` skips: every recorded cell, or only ok/unavailable ones with ``retry_failed``."""
    done = set()
    for key, row in latest_by_key(records).items():
        if not (retry_failed and row.get("status") == "failed"):
            done.add(key)
    return done


def list_runs(out_dir: Path, device: str) -> list[Path]:
    """The device's run files, oldest first (run ids sort by time)."""
    folder = Path(out_dir) / device
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def resolve_resume(out_dir: Path, device: str, run_id: str | None) -> str:
    """The run id to resume: the one given, or the device's latest; errors name what exists."""
    runs = list_runs(out_dir, device)
    names = [p.stem for p in runs]
    if run_id is None:
        if not runs:
            raise EdgekdError(f"--resume: no earlier run for device {device!r} under {Path(out_dir) / device}; start one without --resume")
        return names[-1]
    if run_id not in names:
        shown = ", ".join(names[-5:]) or "none"
        raise EdgekdError(f"--resume {run_id}: no such run for device {device!r} under {Path(out_dir) / device} (latest: {shown})")
    return run_id
