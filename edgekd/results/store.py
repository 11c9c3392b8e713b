"""Append-only JSONL result files: ``bench_results/<device>/<run-id>.jsonl``.

A row is written, flushed and fsynced the moment its cell ends, so a run killed at any point
keeps every finished cell and ``--resume`` continues it. Rows are never rewritten: re-running a
cell appends a newer row and readers take the last row per cell key. A line cut short by a kill
is skipped on reading (with a warning) and terminated before the next append.
"""
from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import tempfile
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
        """Append one row; on any write failure (a full disk) the file is left exactly as it was."""
        validate_record(record)
        line = json.dumps(clean_json(record), ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
        new_file = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size > 0 and not _ends_with_newline(self.path):
                line = b"\n" + line  # terminate a line cut short by a killed writer
            try:
                _write_all(fd, line)
                os.fsync(fd)
            except OSError as err:
                _truncate_back(fd, size)
                failed = err
            else:
                failed = None
        finally:
            os.close(fd)
        if failed is not None:
            if new_file:  # the file did not exist before this append: it does not now
                self.path.unlink(missing_ok=True)
            raise ResultWriteError(_write_failure(self.path, failed, len(line))) from failed
        if new_file:
            _fsync_dir(self.path.parent)

    def read(self) -> tuple[list[dict[str, Any]], list[str]]:
        return read_records(self.path)


class ResultWriteError(EdgekdError):
    """A row could not be appended (disk full, read-only folder); the file is as it was before."""


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a short write without an error is retried)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "write returned 0 bytes")
        view = view[written:]


def _truncate_back(fd: int, size: int) -> None:
    """Cut the file back to ``size`` bytes, dropping any part of a row a failed write left."""
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass  # nothing more can be done here; a torn last line is skipped on reading and terminated next time


def _write_failure(path: Path, err: OSError, needed: int) -> str:
    try:
        free = shutil.disk_usage(path.parent).free
        space = f"; {free:,} bytes are free there" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    except OSError:
        space = ""
    reason = os.strerror(err.errno) if err.errno else str(err)
    return (f"cannot append a result row to {path}: {reason} (the row needs {needed:,} bytes{space}); the file is "
            "unchanged — free some space, then continue with --resume")


def check_writable(folder: str | os.PathLike) -> None:
    """Refuse before any work when ``folder`` (or the nearest existing parent it would be made in) is not writable."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ResultWriteError(f"results folder {folder}: {probe} is not a folder; pass another --out")
    try:
        fd, name = tempfile.mkstemp(prefix=".edgekd-write-check-", dir=probe)
    except OSError as err:
        raise ResultWriteError(f"results folder {folder} is not writable ({os.strerror(err.errno) if err.errno else err} "
                               f"in {probe}); fix its permissions or pass another --out") from err
    os.close(fd)
    os.unlink(name)


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
            else:
                warnings.append(f"{path}:{number}: skipped a JSON {type(row).__name__} (a result row is a JSON object)")
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
