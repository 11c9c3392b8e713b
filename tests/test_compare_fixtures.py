"""Hand-made result records for the compare/report tests — TEST DATA, not measurements.

The figures are invented but shaped like real ones (FACTS.md orders of magnitude) so that the
verdicts, the Pareto front and the pick can be checked by hand:

host budget: ≥ 30 FPS, p99 ≤ 33.3 ms, peak ≤ 1024 MB. Measured ok rows (FPS, mIoU):
  lraspp-sup  onnxruntime-fp32 (52.0, 0.612) meets  — dominated by lraspp-kd openvino-int8
  lraspp-kd   onnxruntime-fp32 (51.0, 0.641) meets  — Pareto
  lraspp-kd   openvino-int8    (95.0, 0.633) meets  — Pareto (fastest)
  fastscnn-kd onnxruntime-fp32 (30.5, 0.655) misses p99 (45 > 33.3) — Pareto (most accurate)
Pick: lraspp-kd onnxruntime-fp32. Not ok: lraspp-kd coreml-fp16 unavailable, fastscnn-kd
openvino-fp32 failed; lraspp-kd onnxruntime-fp32 also has a *later* failed re-run (noted).
One estimate (jetson-orin-nano, passed as a record: estimates never go to bench_results/) must stay
apart from measurements.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.results import ResultStore, make_record, validate_record

HOST_BUDGET = {"target_fps": 30.0, "latency_budget_ms": 33.3, "memory_budget_mb": 1024.0}
TEACHER = {"path": "deeplabv3-teacher.safetensors", "sha256": "ab" * 32, "arch": "deeplabv3_mobilenetv3"}
LRASPP = {"arch": "lraspp_mobilenetv3", "params": 1_120_000, "macs": 1.91e9}
FASTSCNN = {"arch": "fast_scnn", "params": 1_140_000, "macs": 0.95e9}


def _candidate(name: str, base: dict[str, Any], losses: dict[str, float] | None, kd: dict[str, float] | None) -> dict:
    """The bench's ``candidate`` block (edgekd.bench.plan.candidate_block), minus the per-artifact keys."""
    distilled = bool(losses and "kd" in losses)
    return {"checkpoint": f"{name}.safetensors", "checkpoint_sha256": name.encode().hex().ljust(64, "0")[:64],
            **base, "arch_kwargs": {}, "macs_source": "edgekd.models.complexity.count_macs", "num_classes": 12,
            "distillation_method": "distill" if distilled else "supervised",
            "distillation": {"losses": losses or {"ce": 1.0}, "epochs": 3,
                             **({"teacher_sha256": [TEACHER["sha256"]]} if distilled else {})},
            "checkpoint_metrics": {"miou": None, "kd": kd} if kd else {"miou": None}}


CANDIDATES = {
    "lraspp-sup": _candidate("lraspp-sup", LRASPP, None, None),
    "lraspp-kd": _candidate("lraspp-kd", LRASPP, {"ce": 1.0, "kd": 1.0}, {
        "teacher_student_kl": 0.042, "probability_correlation": 0.93, "teacher_miou": 0.70, "student_miou": 0.645,
        "relative_error": 0.355 / 0.30, "distillation_factor": 5.5}),
    "fastscnn-kd": _candidate("fastscnn-kd", FASTSCNN, {"ce": 1.0, "kd": 1.0, "cwd": 0.5}, {
        "teacher_student_kl": 0.051, "probability_correlation": 0.91, "teacher_miou": 0.70, "student_miou": 0.66,
        "relative_error": 0.34 / 0.30, "distillation_factor": 5.4}),
}


def _device(name: str, budget: dict[str, float]) -> dict:
    return {"name": name, "profile_sha256": "cd" * 32, "profile_path": f"device_profiles/{name}.yaml",
            "connection": {"type": "local"}, "real_time": budget}


HOST = {"hostname": "test-vm", "cpu": "TEST CPU (fixture)", "cores_logical": 2, "memory_gb": 7.7,
        "os": "Linux-6.1-x86_64", "python": "3.11.2", "load_avg_start": [0.4, 0.3, 0.2], "load_avg_end": [1.1, 0.6, 0.3]}


def _ok(cand: str, backend: str, prec: str, *, miou: float, p50: float, p99: float, fps: float, peak: float,
        stamp: str, d_fp32: float | None = None, sustained: list | None = None, **extra: Any) -> dict:
    lat = {"n": 300, "min": p50 * 0.9, "p50": p50, "p90": (p50 + p99) / 2, "p99": p99, "max": p99 * 1.2,
           "mean": 1000 / fps, "std": p50 * 0.05, "cv": 0.05}
    return _record(cand, backend, prec, stamp, status="ok", error=None, latency_ms=lat, fps_sync=fps,
                   throughput={"fps": fps * 1.3}, e2e={"frame_ms_p50": p50 + 6.0}, paced={"deadline_miss_pct": 1.5},
                   peak_memory_mb=peak, model_mb=4.4 if prec == "fp32" else 1.3,
                   energy={"energy_per_frame_mj": None, "reason": "no RAPL in the fixture VM"},
                   accuracy={"miou": miou, "boundary_f": miou - 0.1, "delta_miou_vs_fp32": d_fp32},
                   sustained=sustained, **extra)


def _record(cand: str, backend: str, prec: str, stamp: str, device: str = "host", run_id: str = "20250101T000000Z-aaaaaa",
            **parts: Any) -> dict:
    budget = HOST_BUDGET if device == "host" else {"target_fps": 30.0, "latency_budget_ms": 33.3, "memory_budget_mb": 2048.0}
    return make_record(run_id=run_id, timestamp=stamp, cell_key=f"{device}|{cand}|{backend}|{prec}|360x480",
                       device=_device(device, budget), host=HOST,
                       edgekd={"version": "0.1.0", "git_commit": "0123abc", "git_dirty": False},
                       candidate={**CANDIDATES[cand], "artifact_dir": f"artifacts/{cand}/{backend}-{prec}",
                                  "label": f"{cand}/{backend}-{prec}"},
                       backend={"name": backend, "version": "1.0-test", "precision_used": prec},
                       precision_requested=prec, input_size=[360, 480], batch=1, **parts)


def _windows(fps_list: list[float]) -> dict:
    return {"windows": [{"index": i, "seconds": 5.0, "fps": f} for i, f in enumerate(fps_list)],
            "throttle_ratio": fps_list[-1] / fps_list[0]}


def fixture_records() -> list[dict]:
    """Every fixture bench record, in append order (two runs on host)."""
    recs = [
        _ok("lraspp-sup", "onnxruntime", "fp32", miou=0.612, p50=18.0, p99=24.0, fps=52.0, peak=410, stamp="2025-01-01T00:01:00Z"),
        _ok("lraspp-kd", "onnxruntime", "fp32", miou=0.641, p50=18.2, p99=25.0, fps=51.0, peak=412, stamp="2025-01-01T00:02:00Z",
            d_fp32=-0.0002),
        _ok("lraspp-kd", "openvino", "int8", miou=0.633, p50=9.9, p99=13.0, fps=95.0, peak=380, stamp="2025-01-01T00:03:00Z",
            d_fp32=-0.008, sustained=_windows([96.0, 94.0, 90.0, 88.0])),
        _ok("fastscnn-kd", "onnxruntime", "fp32", miou=0.655, p50=31.0, p99=45.0, fps=30.5, peak=450,
            stamp="2025-01-01T00:04:00Z"),
        _record("lraspp-kd", "coreml", "fp16", "2025-01-01T00:05:00Z", status="unavailable",
                error="Core ML prediction is only supported on macOS"),
        _record("fastscnn-kd", "openvino", "fp32", "2025-01-01T00:06:00Z", status="failed",
                error="RuntimeError: Exception from src/inference: fixture failure"),
        _record("lraspp-kd", "onnxruntime", "fp32", "2025-01-02T00:00:00Z", run_id="20250102T000000Z-bbbbbb",
                status="failed", error="worker killed (fixture)"),
    ]
    return recs


def estimate_record() -> dict:
    """Shaped like ``edgekd.estimate.Estimate.to_dict()`` plus the candidate and backend it is for."""
    return {"kind": "estimate", "device": "jetson-orin-nano", "precision": "fp16", "latency_ms": 7.1, "fps": 1000 / 7.1,
            "bound_ms": 4.0, "efficiency": 0.56, "efficiency_source": "fixture", "flops": 3_820_000_000, "bytes": 2.1e7,
            "basis": {"peak": "fixture"}, "notes": [], "candidate": "lraspp-kd", "backend": "tensorrt"}


def write_results(root: Path) -> Path:
    """The fixture records as bench_results/<device>/<run-id>.jsonl files under ``root``; returns the folder."""
    out = Path(root) / "bench_results"
    for rec in fixture_records():
        ResultStore(out / rec["device"]["name"] / f"{rec['run_id']}.jsonl").append(rec)
    return out


def test_fixture_records_follow_the_schema():
    for rec in fixture_records():
        validate_record(rec)


def test_fixture_files_round_trip(tmp_path):
    from edgekd.results import read_records

    root = write_results(tmp_path)
    files = sorted(root.rglob("*.jsonl"))
    assert [f.relative_to(root).as_posix() for f in files] == [
        "host/20250101T000000Z-aaaaaa.jsonl", "host/20250102T000000Z-bbbbbb.jsonl"]
    assert sum(len(read_records(f)[0]) for f in files) == len(fixture_records())
