"""Measure one cell (artifact × backend × precision × input size) inside a worker process.

Order matters and is fixed: baseline RSS -> load -> first inference -> warm-up -> timed loop
(energy window around it) -> end-to-end -> camera-paced -> memory snapshot -> sustained ->
pipelined throughput -> accuracy. Memory is read before the last three because throughput may
load a second, throughput-tuned session and accuracy imports the dataset code (and PyTorch with
it), neither of which is part of the deployed latency pipeline.
"""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.bench import memory, thermal
from edgekd.core import host, timing
from edgekd.core import manifest as core_manifest
from edgekd.bench.cellspec import AccuracySpec, CellSpec, SensorSpec, SustainedSpec
from edgekd.bench.e2e import FramePipeline, FusedFramePipeline, camera_paced, fused_contract, measure_e2e, synthetic_frame
from edgekd.bench.finite import check_finite
from edgekd.bench.power import EnergyMeter, make_energy_meter


def stage(name: str) -> None:
    """Progress for the runner's live display (stderr; stdout carries only the result line)."""
    print(f"EDGEKD_STAGE {name}", file=sys.stderr, flush=True)


def read_manifest(artifact_dir: Path) -> dict[str, Any]:
    """The artifact's manifest through ``edgekd.core.manifest`` (standard library only) rather than
    ``edgekd.export.read_manifest``: importing ``edgekd.export`` pulls in PyTorch (~200 MB RSS) that a
    deployed runtime does not carry."""
    return core_manifest.read_manifest(artifact_dir)


def load_session(artifact_dir: Path, backend_name: str, options: dict[str, Any]):
    """A session through the backend registry: what ``edgekd.export.load_artifact`` does, without
    importing ``edgekd.export`` (see ``read_manifest``). An unavailable runtime raises BackendUnavailable."""
    from edgekd.backends.base import BackendUnavailable
    from edgekd.backends.registry import get_backend

    backend = get_backend(backend_name)
    ok, reason = backend.is_available()
    if not ok:
        raise BackendUnavailable(reason)
    return backend.load(Path(artifact_dir), **options)


def input_hw(manifest: dict[str, Any], fallback: list[int] | None) -> tuple[tuple[int, int], int]:
    """(H, W) and batch from the manifest's input shape; dynamic dims take the profile's size / batch 1.

    For a fused artifact (``--embed-pre-post``) it is the network's input inside the graph."""
    contract = fused_contract(manifest)
    if contract:
        return tuple(int(v) for v in contract["network_input_hw"]), 1
    shape = manifest.get("input_shape") or [1, 3, None, None]
    h, w = shape[2], shape[3]
    if not (isinstance(h, int) and isinstance(w, int)):
        if not fallback:
            raise ValueError(f"artifact input shape {shape} has dynamic H×W and no input size was given")
        h, w = fallback
    batch = shape[0] if isinstance(shape[0], int) else 1
    return (int(h), int(w)), int(batch)


def model_mb(artifact_dir: Path, manifest: dict[str, Any]) -> float:
    if isinstance(manifest.get("size_bytes"), int):
        return manifest["size_bytes"] / 2**20
    return memory.file_size_mb([p for p in artifact_dir.iterdir() if p.name != core_manifest.MANIFEST_NAME])


def _describe(session: Any, manifest: dict[str, Any]) -> dict[str, Any]:
    d = dict(session.describe())
    return {
        "name": d.get("backend", manifest.get("backend")), "version": d.get("backend_version", manifest.get("backend_version")),
        "provider": d.get("providers") or d.get("provider") or d.get("execution_devices"),
        "device": d.get("device_name") or d.get("device"), "precision_used": d.get("precision"),
        "threads": d.get("threads"), "describe": d,
    }


def _throughput(session: Any, backend_name: str, artifact_dir: Path, spec: CellSpec, x: np.ndarray) -> dict[str, Any]:
    """Pipelined FPS through the session's async API, where the backend offers one.

    A latency-tuned session runs one stream, so its async FPS is the sync FPS again; when the
    backend takes a ``performance_hint`` (OpenVINO) a second session compiled for THROUGHPUT is
    used and the row says so. Measured after the memory snapshot so it does not inflate the peak.
    """
    if not callable(getattr(session, "run_async_throughput", None)):
        return {"fps": None, "reason": f"{type(session).__name__} offers no asynchronous API (run_async_throughput); "
                                       "pipelined throughput not measured"}
    from edgekd.backends.registry import get_backend

    options = dict(spec.runtime_options)
    tp_session, note = session, "the latency session"
    if "performance_hint" in get_backend(backend_name).runtime_options and options.get("performance_hint") != "THROUGHPUT":
        options.pop("num_streams", None)
        tp_session = load_session(artifact_dir, backend_name, {**options, "performance_hint": "THROUGHPUT"})
        note = "a second session with performance_hint=THROUGHPUT (streams and requests chosen by the runtime)"
    result = tp_session.run_async_throughput(x, spec.throughput_s)
    out = dict(result) if isinstance(result, dict) else {"fps": float(result)}
    return {**out, "session": note}


def _sustained(step, sync, spec: SustainedSpec, meter: EnergyMeter, thermal_on: bool) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []

    def on_window(index: int, samples: np.ndarray, seconds: float) -> None:
        energy = meter.end(len(samples))
        temps = _temperatures(SensorSpec(thermal_zones=thermal_on))
        stats = timing.summarize(samples)
        rows.append({
            "index": index, "seconds": seconds, "frames": int(samples.size), "fps": samples.size / seconds,
            "p50_ms": stats.p50, "p90_ms": stats.p90, "p99_ms": stats.p99, "rss_mb": memory.current_rss_mb(),
            "temp_max_c": thermal.hottest(temps), "temperatures_c": temps.get("temperatures_c"),
            "avg_power_w": energy.get("avg_power_w"), "energy_per_frame_mj": energy.get("energy_per_frame_mj"),
        })
        meter.begin()

    meter.begin()
    timing.windows(step, sync, spec.seconds, spec.window_s, on_window)
    first, last = rows[0], rows[-1]
    temps = [r["temp_max_c"] for r in rows if r["temp_max_c"] is not None]
    return {
        "seconds": spec.seconds, "window_s": spec.window_s, "windows": rows,
        "fps_first": first["fps"], "fps_last": last["fps"], "throttle_ratio": last["fps"] / first["fps"],
        "p90_first_ms": first["p90_ms"], "p90_last_ms": last["p90_ms"],
        "rss_first_mb": first["rss_mb"], "rss_last_mb": last["rss_mb"], "rss_growth_mb": last["rss_mb"] - first["rss_mb"],
        "temp_first_c": temps[0] if temps else None, "temp_last_c": temps[-1] if temps else None,
        "temperature_reason": None if temps else "no readable thermal zone on this machine",
    }


def _temperatures(sensors: SensorSpec) -> dict[str, Any]:
    if not sensors.thermal_zones:
        return {"temperatures_c": None, "reason": "the device profile lists no thermal zones"}
    return thermal.read_thermal_zones()


def _accuracy(session: Any, spec: AccuracySpec, hw: tuple[int, int], manifest: dict[str, Any]) -> dict[str, Any]:
    from edgekd.bench.accuracy import evaluate_fused, evaluate_session, open_split

    dataset = open_split(spec.data, spec.split)
    contract = fused_contract(manifest)
    if contract:
        return evaluate_fused(session, contract, dataset, limit=spec.limit)
    return evaluate_session(session.run, session.sync, dataset, input_hw=hw, normalization=manifest["normalization"],
                            limit=spec.limit)


def measure_cell(spec: CellSpec, out: dict[str, Any]) -> None:
    """Fill ``out`` with the record's measured parts; exceptions propagate to the worker's handler
    (``out`` keeps what was measured before, so a failed row still shows how far it got)."""
    artifact_dir = Path(spec.artifact_dir)
    manifest = read_manifest(artifact_dir)
    hw, batch = input_hw(manifest, spec.input_size)
    out.update(input_size=list(hw), batch=batch, model_mb=model_mb(artifact_dir, manifest))
    sensors = spec.sensors
    out["thermal"] = {"start": _temperatures(sensors)}
    mem: dict[str, Any] = {"baseline_rss_mb": memory.current_rss_mb()}
    out["memory"] = mem
    with memory.RssSampler() as sampler:
        session = _load(artifact_dir, manifest, spec, out)
        mem["after_load_rss_mb"] = memory.current_rss_mb()
        pipeline, frame, x, step = _pipeline(session, manifest, hw, batch, spec, out)
        if not fused_contract(manifest):  # a NaN/Inf output fails the cell before anything is timed
            check_finite(np.asarray(session.run(np.array(x))), "the model's output on a camera frame")
        out["first_inference_ms"] = timing.first_call_ms(step, session.sync)
        stage("warmup")
        warm = timing.warm_up(step, session.sync, spec.warmup)
        out["warmup"] = {**warm.__dict__, "policy": asdict(spec.warmup)}
        meter = make_energy_meter(sensors.rapl, sensors.tegrastats, sensors.tegrastats_interval_ms)
        try:
            _timed(step, session, spec, out, meter)
            _frames(pipeline, frame, spec, out)
            mem.update(peak_rss_mb=memory.peak_rss_mb(), sampled_peak_rss_mb=sampler.peak_mb,
                       ru_maxrss_mb=memory.ru_maxrss_mb(), **memory.gpu_memory())
            mem["model_rss_mb"] = mem["peak_rss_mb"] - mem["baseline_rss_mb"]
            out["peak_memory_mb"] = mem["peak_rss_mb"]
            if spec.sustained:
                stage("sustained")
                out["sustained"] = _sustained(step, session.sync, spec.sustained, meter, sensors.thermal_zones)
        finally:
            meter.close()
        out["throughput"] = {"fps": None, "reason": "not requested (--throughput 0)"}
        if spec.throughput_s:
            stage("throughput")
            out["throughput"] = _throughput(session, manifest["backend"], artifact_dir, spec, x)
    out["thermal"]["end"] = _temperatures(sensors)
    if spec.accuracy:
        stage("accuracy")
        out["accuracy"] = _accuracy(session, spec.accuracy, hw, manifest)


def _pipeline(session: Any, manifest: dict[str, Any], hw: tuple[int, int], batch: int, spec: CellSpec,
              out: dict[str, Any]) -> tuple[Any, np.ndarray, np.ndarray, Any]:
    """(frame pipeline, camera frame, the bound model input, the timed step) for this artifact.

    The timed step is ``session.bind(x)``: one inference on the input buffer the pre-processing
    fills, output left in the runtime's buffer (docs/bench.md, "the timed region"). The e2e
    pipeline runs the same bound step. A fused artifact takes the uint8 camera frame itself."""
    camera_hw = tuple(spec.camera_hw or hw)
    contract = fused_contract(manifest)
    if contract:
        frame_hw = tuple(int(v) for v in contract["input"]["shape"][1:3])
        contract = dict(contract)
        if frame_hw != camera_hw:
            contract["camera_note"] = (f"the fused artifact takes {frame_hw[0]}x{frame_hw[1]} frames; the profile's camera "
                                       f"is {camera_hw[0]}x{camera_hw[1]}: frames of the artifact's size were used")
        pipeline = FusedFramePipeline(session, contract, frame_hw)
        frame = synthetic_frame(*frame_hw)
        if contract["input"].get("channel_order", "RGB").upper() == "BGR":
            frame = np.ascontiguousarray(frame[..., ::-1])
        np.copyto(pipeline.x[0], frame)
        out["io_contract"] = contract
        return pipeline, frame, pipeline.x, pipeline._step
    norm = manifest["normalization"]
    frame = synthetic_frame(*camera_hw)
    pipeline = FramePipeline(session.run, session.sync, hw, tuple(norm["mean"]), tuple(norm["std"]),
                             norm.get("channel_order", "RGB"), camera_hw)
    pipeline.preprocess(frame)
    if batch == 1:
        x = pipeline.x
        step = session.bind(x)
        pipeline.use_step(step)
    else:  # the frame pipeline is single-frame; the timed loop feeds the whole batch
        x = np.ascontiguousarray(np.repeat(pipeline.x, batch, axis=0))
        step = session.bind(x)
    return pipeline, frame, x, step


def _load(artifact_dir: Path, manifest: dict[str, Any], spec: CellSpec, out: dict[str, Any]) -> Any:
    stage("load")
    t0 = time.perf_counter_ns()
    session = load_session(artifact_dir, manifest["backend"], spec.runtime_options)
    out["load_s"] = (time.perf_counter_ns() - t0) / 1e9
    out["backend"] = _describe(session, manifest)
    return session


def _frames(pipeline: FramePipeline, frame: np.ndarray, spec: CellSpec, out: dict[str, Any]) -> None:
    """End-to-end frames back to back, then camera-paced frames at the device's FPS."""
    if spec.e2e:
        stage("e2e")
        out["e2e"] = measure_e2e(pipeline, frame, duration_s=spec.e2e.duration_s)
    if spec.paced:
        stage("paced")
        p = spec.paced
        out["paced"] = camera_paced(pipeline, frame, target_fps=p.target_fps,
                                    deadline_ms=p.deadline_ms, duration_s=p.duration_s)


def _timed(step, session: Any, spec: CellSpec, out: dict[str, Any], meter: EnergyMeter) -> None:
    stage("timed")
    load_start, cpu_start = host.load_average(), host.cpu_times()
    meter.begin()
    samples, stopped_by = timing.timed_loop(step, session.sync, spec.timing)
    out["energy"] = meter.end(len(samples))
    cpu = host.other_cpu_load(cpu_start, host.cpu_times())
    stats = timing.summarize(samples)
    out.update(iterations=stats.n, timed_s=float(samples.sum() / 1e9), stopped_by=stopped_by,
               latency_ms={k: v for k, v in stats.to_dict().items() if k != "fps"}, fps_sync=stats.fps)
    out["noise"] = timing.noise_block(stats, host.os.cpu_count(), load_start, host.load_average(), cpu, stopped_by)
    out["timed_region"] = ("session.bind(x) step: one inference on the input buffer the pre-processing fills, "
                           "output read in place (no per-call input tensor, copy or output allocation), sync included")
    if out.get("io_contract"):
        out["timed_region"] = ("session.bind(frame) step of a fused artifact: the uint8 camera frame in, resize, "
                               "normalisation and argmax inside the graph, the uint8 class map read in place, sync included")


def measure_accuracy_only(spec: CellSpec, out: dict[str, Any]) -> None:
    """The FP32 reference job: accuracy of one artifact, nothing timed."""
    artifact_dir = Path(spec.artifact_dir)
    manifest = read_manifest(artifact_dir)
    hw, _ = input_hw(manifest, spec.input_size)
    session = load_session(artifact_dir, manifest["backend"], spec.runtime_options)
    out["backend"] = _describe(session, manifest)
    out["accuracy"] = {**_accuracy(session, spec.accuracy, hw, manifest), "artifact": str(artifact_dir)}
