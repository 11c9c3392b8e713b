"""The result record: one JSON object per benchmark cell (docs/bench.md, "Result record").

Every record carries every key below, ``None`` where a figure does not apply or could not be
measured; a ``*_reason`` / ``reason`` key beside it says why. Readers key on ``schema_version``:
a change that renames, removes or newly requires a key bumps it; older versions stay readable
(``validate_record`` checks a row against the keys of its own version).

Versions: 1 — the keys below without ``noise``, ``io_contract``, ``timed_region`` and the
latency intervals. 2 — adds ``noise`` (noisy-run evidence and warnings), ``io_contract`` (the
fused frame → class-map contract of an ``--embed-pre-post`` artifact, else None),
``timed_region`` (what the timed step does) and ``latency_ms.p50_ci`` / ``p99_ci`` (confidence
intervals, ``ci_level``), and ``host.cpu_features``.

Top-level keys (see docs/bench.md for the nested blocks):

- identity: ``schema_version``, ``run_id``, ``timestamp`` (UTC, cell end), ``cell_key``
- ``device``: profile name, hash, path, connection, real-time budget
- ``host``: CPU, cores, memory, OS, load average at start and end, clocks, power mode
- ``edgekd``: version, git commit, dirty flag
- ``candidate``: artifact dir and id, checkpoint sha256, arch, params, MACs, distillation method
- ``backend``: name, version, provider/device and the precision *actually used* (``describe()``)
- ``precision_requested``, ``input_size`` [H, W], ``batch``
- ``warmup``, ``iterations``, ``timed_s``, ``stopped_by``
- ``latency_ms`` {min, p50, p90, p99, max, mean, std, cv}, ``fps_sync``, ``throughput``
- ``e2e`` (per-stage medians at camera resolution), ``paced`` (deadline misses, jitter)
- ``load_s``, ``first_inference_ms``, ``memory`` {peak_rss_mb, baseline_rss_mb, ...},
  ``peak_memory_mb``, ``model_mb``
- ``accuracy``, ``sustained``, ``energy``, ``thermal``, ``budget``
- ``status`` (ok | failed | unavailable), ``error``
- v2: ``noise``, ``io_contract``, ``timed_region``
"""
from __future__ import annotations

import math
from typing import Any

SCHEMA_VERSION = 2
STATUSES = ("ok", "failed", "unavailable")

RECORD_KEYS_V1 = (
    "schema_version", "run_id", "timestamp", "cell_key",
    "device", "host", "edgekd", "candidate", "backend",
    "precision_requested", "input_size", "batch",
    "warmup", "iterations", "timed_s", "stopped_by",
    "latency_ms", "fps_sync", "throughput", "e2e", "paced",
    "load_s", "first_inference_ms", "memory", "peak_memory_mb", "model_mb",
    "accuracy", "sustained", "energy", "thermal", "budget",
    "status", "error",
)
RECORD_KEYS = RECORD_KEYS_V1 + ("noise", "io_contract", "timed_region")
LATENCY_KEYS_V1 = ("n", "min", "p50", "p90", "p99", "max", "mean", "std", "cv")
LATENCY_KEYS = LATENCY_KEYS_V1 + ("p50_ci", "p99_ci", "ci_level")
_BY_VERSION = {1: (RECORD_KEYS_V1, LATENCY_KEYS_V1), 2: (RECORD_KEYS, LATENCY_KEYS_V1)}  # CI keys: written by the bench, not required


class RecordError(ValueError):
    """A record that does not follow the schema (a bug in the harness, not a user error)."""


def make_record(**parts: Any) -> dict[str, Any]:
    """A complete record: the given parts, ``None`` for every other key, ``schema_version`` set."""
    unknown = sorted(set(parts) - set(RECORD_KEYS))
    if unknown:
        raise RecordError(f"unknown result record key(s) {unknown}; known: {', '.join(RECORD_KEYS)}")
    record = {key: parts.get(key) for key in RECORD_KEYS}
    record["schema_version"] = SCHEMA_VERSION
    return record


def validate_record(record: dict[str, Any]) -> None:
    """Raise RecordError when a key of the record's own ``schema_version`` is missing or a
    status/latency block is malformed (version-1 rows stay valid: they predate the v2 keys)."""
    version = record.get("schema_version", SCHEMA_VERSION)
    if version not in _BY_VERSION:
        raise RecordError(f"schema_version {version!r} is not one this edgekd reads ({', '.join(map(str, _BY_VERSION))}); "
                          "upgrade edgekd")
    record_keys, latency_keys = _BY_VERSION[version]
    missing = [k for k in record_keys if k not in record]
    if missing:
        raise RecordError(f"result record lacks key(s) {missing}")
    if record["status"] not in STATUSES:
        raise RecordError(f"status {record['status']!r} is not one of {', '.join(STATUSES)}")
    if record["status"] != "ok" and not record["error"]:
        raise RecordError(f"a {record['status']!r} record needs an error message")
    if record["status"] == "ok":
        lat = record["latency_ms"] or {}
        absent = [k for k in latency_keys if k not in lat]
        if absent:
            raise RecordError(f"an ok v{version} record needs latency_ms {', '.join(latency_keys)}; missing {absent}")


def clean_json(value: Any) -> Any:
    """NaN/inf -> None (JSON has no NaN), tuples -> lists, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
