"""Result records and the append-only store: complete rows, durable appends, resume and dedup."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from edgekd.errors import EdgekdError
from edgekd.results import store as store_module
from edgekd.results.schema import RECORD_KEYS, SCHEMA_VERSION, RecordError, clean_json, make_record, validate_record
from edgekd.results.store import (
    ResultStore, completed_keys, latest_by_key, list_runs, new_run_id, read_records, resolve_resume, run_path,
)

LATENCY = {"n": 3, "min": 1.0, "p50": 2.0, "p90": 2.5, "p99": 3.0, "max": 3.0, "mean": 2.0, "std": 1.0, "cv": 0.5}


def ok_row(key: str, p50: float = 2.0) -> dict:
    return make_record(run_id="r", cell_key=key, status="ok", latency_ms={**LATENCY, "p50": p50}, fps_sync=float("nan"))


def test_make_record_fills_every_key() -> None:
    row = make_record(status="unavailable", error="TensorRT needs a GPU")
    assert tuple(row) == RECORD_KEYS
    assert row["schema_version"] == SCHEMA_VERSION and row["latency_ms"] is None
    with pytest.raises(RecordError, match="unknown result record key"):
        make_record(latency=1)


def test_validate_refuses_incomplete_rows() -> None:
    with pytest.raises(RecordError, match="needs an error message"):
        validate_record(make_record(status="failed"))
    with pytest.raises(RecordError, match="latency_ms"):
        validate_record(make_record(status="ok", latency_ms={"p50": 1.0}))
    with pytest.raises(RecordError, match="status"):
        validate_record(make_record(status="done"))
    bad = make_record(status="ok", latency_ms=LATENCY)
    del bad["energy"]
    with pytest.raises(RecordError, match="energy"):
        validate_record(bad)


def test_clean_json_makes_strict_json() -> None:
    import numpy as np

    out = clean_json({"a": float("nan"), "b": (1, np.float32(2.5)), "c": {"d": float("inf"), 3: np.int64(4)}})
    assert out == {"a": None, "b": [1, 2.5], "c": {"d": None, "3": 4}}
    json.dumps(out, allow_nan=False)


def test_append_is_flushed_fsynced_and_reads_back(tmp_path: Path, monkeypatch) -> None:
    synced = []
    real_fsync = store_module.os.fsync
    monkeypatch.setattr(store_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    store = ResultStore(run_path(tmp_path, "host", "20250101T000000Z-abcdef"))
    store.append(ok_row("k1"))
    store.append(ok_row("k2", 5.0))
    assert len(synced) >= 2, "every append must fsync"
    text = store.path.read_text()
    assert text.endswith("\n") and len(text.splitlines()) == 2
    rows, warnings = store.read()
    assert [r["cell_key"] for r in rows] == ["k1", "k2"] and not warnings
    assert rows[0]["fps_sync"] is None  # NaN became null: every line is strict JSON
    for line in text.splitlines():
        json.loads(line)


def test_line_cut_by_a_kill_is_skipped_then_terminated(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "dev" / "run.jsonl")
    store.append(ok_row("k1"))
    with open(store.path, "a") as f:
        f.write('{"schema_version": 1, "cell_key": "k2", "stat')  # what a kill mid-write leaves
    rows, warnings = read_records(store.path)
    assert [r["cell_key"] for r in rows] == ["k1"] and len(warnings) == 1 and "incomplete" in warnings[0]
    store.append(ok_row("k2"))
    rows, warnings = read_records(store.path)
    assert [r["cell_key"] for r in rows] == ["k1", "k2"] and len(warnings) == 1


def test_resume_keys_and_dedup() -> None:
    failed = make_record(cell_key="k2", status="failed", error="boom")
    rows = [ok_row("k1", 1.0), failed, ok_row("k1", 9.0), make_record(cell_key="k3", status="unavailable", error="no GPU")]
    latest = latest_by_key(rows)
    assert latest["k1"]["latency_ms"]["p50"] == 9.0 and len(latest) == 3
    assert completed_keys(rows) == {"k1", "k2", "k3"}
    assert completed_keys(rows, retry_failed=True) == {"k1", "k3"}


def test_run_ids_sort_by_time_and_resume_finds_latest(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    a = new_run_id(datetime(2025, 1, 1, tzinfo=timezone.utc))
    b = new_run_id(datetime(2025, 1, 2, tzinfo=timezone.utc))
    assert a < b and len(a.split("-")[1]) == 6
    for rid in (b, a):
        ResultStore(run_path(tmp_path, "host", rid)).append(ok_row("k"))
    assert [p.stem for p in list_runs(tmp_path, "host")] == [a, b]
    assert resolve_resume(tmp_path, "host", None) == b
    assert resolve_resume(tmp_path, "host", a) == a
    with pytest.raises(EdgekdError, match="no such run"):
        resolve_resume(tmp_path, "host", "nope")
    with pytest.raises(EdgekdError, match="no earlier run"):
        resolve_resume(tmp_path, "jetson-orin-nano", None)


def test_rows_are_never_rewritten(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "d" / "r.jsonl")
    store.append(ok_row("k1"))
    first = store.path.read_bytes()
    store.append(ok_row("k1", 3.0))
    assert store.path.read_bytes().startswith(first)
    assert not math.isnan(latest_by_key(store.read()[0])["k1"]["latency_ms"]["p50"])
