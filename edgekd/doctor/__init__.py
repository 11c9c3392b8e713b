"""``edgekd doctor``: pre-flight checks of a checkpoint or an artifact against device profiles.

Problems found on a device cost a round trip each; most can be seen from here: the weights
(subnormal, NaN, Inf, FP16 range), the exported ONNX graph against each target backend's limits,
shapes and memory against the profile, and precision pitfalls. ``run_doctor`` returns a
:class:`DoctorReport`; its ``exit_code`` is 1 when any finding is an error. ``--fix`` writes a
copy with subnormals flushed and measures what that changes (``edgekd.doctor.fix``).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from edgekd.doctor.findings import SEVERITIES, DoctorReport, Finding
from edgekd.doctor.weights import check_weights, flush_subnormals
from edgekd.errors import EdgekdError

Log = Callable[[str], None]
DEFAULT_DEVICES = ("host",)
#: The pre-flight checks a backend can declare (``Backend.doctor_checks``), by where they run: on the
#: ONNX graph (``_graph_check``), on the device profile, on an exported artifact folder.
GRAPH_CHECKS = ("tensorrt-ops", "coreml-ops", "openvino-compile", "onnxruntime-session")
PROFILE_CHECKS = ("openvino-default-precision",)
ARTIFACT_CHECKS = ("mobile-artifact",)
BACKEND_CHECKS = GRAPH_CHECKS + PROFILE_CHECKS + ARTIFACT_CHECKS

__all__ = ["DoctorReport", "Finding", "SEVERITIES", "check_weights", "flush_subnormals", "run_doctor"]


def run_doctor(target: str | os.PathLike, devices: list[str] | tuple[str, ...] | None = None,
               fix_out: str | os.PathLike | None = None, *, arch: str | None = None, num_classes: int | None = None,
               data: str | os.PathLike | None = None, calib: str | os.PathLike | None = None, threads: int = 2,
               speed_iters: int = 5, force: bool = False, log: Log | None = None) -> DoctorReport:
    """Check ``target`` (a checkpoint file or an artifact folder) for ``devices`` (profile names; default host).

    ``fix_out`` (checkpoints only) writes a copy with subnormal weights flushed, with parity on
    ``data``'s val images (else synthetic scenes) and the speed change measured here.
    ``calib`` is the calibration data an INT8 export would use (checked for presence and size).
    """
    from edgekd.profiles import load_profile

    log = log or (lambda message: None)
    path = Path(target)
    profiles = [load_profile(d) for d in (devices or DEFAULT_DEVICES)]
    if path.is_dir():
        if fix_out is not None:
            raise EdgekdError(f"--fix works on checkpoints, not artifact folders ({path}); run it on the source checkpoint "
                              "and re-export (export flushes subnormals by default)")
        return _doctor_artifact(path, profiles, log)
    if not path.is_file():
        raise EdgekdError(f"{str(path)!r} is neither a checkpoint file nor an artifact folder")
    if fix_out is not None:
        from edgekd.doctor.fix import check_fix_output

        check_fix_output(path, fix_out, force)
    with tempfile.TemporaryDirectory(prefix="edgekd-doctor-") as tmp:
        report, graphs = _doctor_checkpoint(path, profiles, arch, num_classes, calib, Path(tmp), log)
        if fix_out is not None:
            from edgekd.doctor.fix import fix_checkpoint

            size = tuple(report.facts["input_size"])  # the ONNX graph at the checkpoint's size is the "before" graph
            report.fix = fix_checkpoint(path, fix_out, arch=arch, num_classes=num_classes, data=data, threads=threads,
                                        iters=speed_iters, force=force, onnx_before=graphs.get(size), log=log)
    return report


def _doctor_checkpoint(path: Path, profiles: list[Any], arch: str | None, num_classes: int | None, calib: Any,
                       tmp: Path, log: Log) -> tuple[DoctorReport, dict[tuple[int, int], Path | None]]:
    """Weights, stride and per-device checks; the ONNX graphs exported (one per input size) stay in ``tmp``."""
    from edgekd.checkpoint import load_checkpoint, sha256_file
    from edgekd.doctor.graph_runtime import check_batchnorm
    from edgekd.doctor.precision import check_int8_calibration
    from edgekd.doctor.shapes import check_stride

    model, meta = load_checkpoint(path, arch=arch, num_classes=num_classes)
    stride = int(getattr(model, "output_stride", 1))
    report = DoctorReport(str(path), "checkpoint", [p.name for p in profiles])
    report.facts = {"arch": meta.arch, "params": meta.params, "num_classes": meta.num_classes, "input_size": list(meta.input_size),
                    "output_stride": stride, "file_mb": path.stat().st_size / 2**20, "sha256": sha256_file(path)}
    log("checking weights")
    report.add(check_weights(model.state_dict()))
    report.add(check_stride(tuple(meta.input_size), stride, "checkpoint input_size", model=model, arch=meta.arch))
    graphs: dict[tuple[int, int], Path | None] = {}
    mobile: dict[tuple[int, int], list[Finding]] = {}  # one XNNPACK lowering per input size
    for profile in profiles:
        size = (int(profile.input_size[0]), int(profile.input_size[1]))
        stride_findings = check_stride(size, stride, f"{profile.name} input_size", profile.name, model=model, arch=meta.arch)
        report.add(stride_findings)
        if size not in graphs and not any(f.severity == "error" for f in stride_findings):
            graphs[size] = _export_graph(model, size, tmp, report, log)
            if graphs[size] is not None:
                _graph_facts(graphs[size], size, report)
                report.add(check_batchnorm(_load(graphs[size])))
        report.add(_device_checks(graphs.get(size), profile, None, log))
        report.add(_mobile_checks(model, size, profile, mobile, log))
        report.add(check_int8_calibration(profile, calib))
    return report, graphs


def _mobile_checks(model: Any, size: tuple[int, int], profile: Any, cache: dict[tuple[int, int], list[Finding]],
                   log: Log) -> list[Finding]:
    """XNNPACK delegation of the torch.export graph, for devices that run LiteRT or ExecuTorch."""
    from dataclasses import replace

    from edgekd.doctor.mobile import MOBILE_BACKENDS, check_checkpoint

    if not set(profile.accepted_backends) & set(MOBILE_BACKENDS) or profile.connection.type == "local":
        return []
    if size not in cache:
        log(f"lowering the torch.export graph at {size[0]}x{size[1]} with the XNNPACK partitioner")
        cache[size] = check_checkpoint(model, size, None)
    return [replace(f, device=profile.name) for f in cache[size]]


def _export_graph(model: Any, size: tuple[int, int], tmp: Path, report: DoctorReport, log: Log) -> Path | None:
    from edgekd.backends.onnx_export import export_onnx

    path = tmp / f"model_{size[0]}x{size[1]}.onnx"
    log(f"exporting ONNX at {size[0]}x{size[1]} for the graph checks")
    try:
        export_onnx(model, size, path)
    except EdgekdError as err:
        report.add([Finding("error", "onnx-export-failed", f"ONNX export at {size[0]}x{size[1]} failed: {err}",
                            "every ONNX-based backend (ONNX Runtime, OpenVINO, TensorRT) needs this graph",
                            "see the message: replace the op, or try edgekd export --exporter torchscript")])
        return None
    return path


def _load(path: Path) -> Any:
    import onnx

    return onnx.load(str(path))


def _graph_facts(path: Path, size: tuple[int, int], report: DoctorReport) -> None:
    from edgekd.estimate.onnx_cost import graph_cost

    model = _load(path)
    cost = graph_cost(model)
    report.facts.setdefault("graphs", {})[f"{size[0]}x{size[1]}"] = {
        "nodes": len(model.graph.node), "gflops": cost.flops / 1e9, "op_types": sorted({n.op_type for n in model.graph.node})}


def _backends_to_check(profile: Any, only: str | None) -> tuple[list[str], list[str]]:
    """(backends to check, backends skipped because their runtime is not installed here)."""
    from edgekd.backends.registry import get_backend

    wanted = [b for b in ([only] if only else list(profile.accepted_backends)) if get_backend(b).doctor_graph]
    if profile.connection.type == "local" and only is None:  # this machine: only what can run here
        wanted = [b for b in wanted if get_backend(b).is_available()[0]]
    checked, skipped = [], []
    for b in wanted:
        module = get_backend(b).doctor_needs
        if module is not None and not _importable(module):
            skipped.append(b)
        else:
            checked.append(b)
    return checked, skipped


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _graph_check(name: str, model: Any, onnx_path: Path, profile: Any) -> list[Finding]:
    """One of the named pre-flight checks a backend declares (``Backend.doctor_checks``) on an ONNX graph."""
    from edgekd.doctor import graph
    from edgekd.doctor.graph_runtime import check_onnxruntime, check_openvino

    if name == "tensorrt-ops":
        return graph.check_tensorrt(model, profile.name)
    if name == "coreml-ops":
        return graph.check_coreml(model, profile.name)
    if name == "openvino-compile":
        return check_openvino(onnx_path, profile.name, local=profile.connection.type == "local", threads=profile.runtime.threads)
    if name == "onnxruntime-session":
        return check_onnxruntime(onnx_path, profile.name)
    return []  # profile checks run in _device_checks, artifact checks ("mobile-artifact") in _doctor_artifact


def _profile_checks(profile: Any, only_backend: str | None) -> list[Finding]:
    """The profile-level checks of ``only_backend`` (of every backend when None; each check looks at
    whether the profile runs its backend)."""
    from edgekd.backends.registry import get_backend, list_backends
    from edgekd.doctor.precision import check_openvino_default

    declared = {c for b in ([only_backend] if only_backend else list_backends()) for c in get_backend(b).doctor_checks}
    return check_openvino_default(profile) if "openvino-default-precision" in declared else []


def _device_checks(onnx_path: Path | None, profile: Any, only_backend: str | None, log: Log) -> list[Finding]:
    """Camera, memory, per-backend graph checks and the OpenVINO default-precision trap for one profile."""
    from edgekd.doctor import graph
    from edgekd.backends.registry import get_backend
    from edgekd.doctor.graph_runtime import check_openvino
    from edgekd.doctor.shapes import activation_memory, check_camera, check_memory

    findings = check_camera(profile)
    if onnx_path is not None and onnx_path.suffix == ".onnx":
        model = _load(onnx_path)
        findings += check_memory(activation_memory(model), profile, onnx_path.stat().st_size)
        backends, skipped = _backends_to_check(profile, only_backend)
        for backend in backends:
            log(f"{profile.name}: graph checks for {backend}")
            findings += graph.check_dynamic(model, backend, profile.name) + graph.check_custom_domains(model, backend, profile.name)
            for check in get_backend(backend).doctor_checks:
                findings += _graph_check(check, model, onnx_path, profile)
        findings += [Finding("info", "check-skipped", f"{b} is not installed here: its op-support check was skipped",
                             "unsupported ops would only show on the device",
                             f"pip install 'edgekd[{get_backend(b).pip_extra}]' and re-run",
                             device=profile.name) for b in skipped]
    elif onnx_path is not None and onnx_path.suffix == ".xml":
        findings += check_openvino(onnx_path, profile.name, local=profile.connection.type == "local", threads=profile.runtime.threads)
    return findings + _profile_checks(profile, only_backend)


def _doctor_artifact(folder: Path, profiles: list[Any], log: Log) -> DoctorReport:
    from edgekd.doctor.artifact import artifact_facts, artifact_graph, artifact_weights
    from edgekd.doctor.precision import check_artifact_precision
    from edgekd.backends.registry import get_backend
    from edgekd.doctor.shapes import check_input_matches, check_stride
    from edgekd.export import read_manifest

    manifest = read_manifest(folder)
    report = DoctorReport(str(folder), "artifact", [p.name for p in profiles], facts=artifact_facts(folder, manifest))
    size = tuple(int(v) for v in manifest["input_shape"][2:4])
    report.add(check_stride(size, int(manifest.get("output_stride") or 1), "artifact input"))
    report.add(artifact_weights(folder, manifest, log))
    report.add(check_artifact_precision(manifest))
    graph_path = artifact_graph(folder, manifest)
    backend = manifest["backend"]
    for profile in profiles:
        if backend not in profile.accepted_backends:
            report.add([Finding("error", "backend-mismatch", f"the artifact is for {backend}; {profile.name} runs "
                                f"{', '.join(profile.accepted_backends)}", "the device cannot load it",
                                f"export for {profile.backend}: edgekd export --backend {profile.backend}", device=profile.name)])
            continue
        report.add(check_input_matches(size, profile))
        if "mobile-artifact" in get_backend(backend).doctor_checks:
            from edgekd.doctor.mobile import check_artifact

            report.add(check_artifact(folder, manifest, profile.name))
        report.add(_device_checks(graph_path, profile, backend, log))
    if graph_path is None and "mobile-artifact" not in get_backend(backend).doctor_checks:
        report.add([Finding("info", "check-skipped", f"no ONNX or OpenVINO graph in this {backend} artifact: graph checks skipped",
                            "op-support problems would only show on the device",
                            "run edgekd doctor on the source checkpoint (manifest source.checkpoint) for the graph checks")])
    return report
