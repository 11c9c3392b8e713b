"""Reading what an artifact folder holds for the doctor: its facts, its graph and its weights.

Weights are read from the runtime file itself (ONNX initializers, OpenVINO constants) rather than
from the source checkpoint, so the check sees what will actually be deployed — e.g. whether
export flushed the subnormals (``--keep-subnormals`` keeps them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from edgekd.doctor.findings import Finding
from edgekd.doctor.weights import check_weights


def artifact_facts(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    keys = ("arch", "backend", "backend_version", "precision", "precision_used", "input_shape", "output_stride",
            "params", "size_bytes", "subnormals_flushed", "subnormals_found", "runtime_file")
    facts = {k: manifest.get(k) for k in keys}
    facts["source"] = (manifest.get("source") or {}).get("checkpoint")
    return facts


def artifact_graph(folder: Path, manifest: dict[str, Any]) -> Path | None:
    """The graph file the checks can read: the runtime file when it is ONNX or OpenVINO IR, else any ONNX beside it."""
    runtime = manifest.get("runtime_file")
    if runtime and Path(runtime).suffix in (".onnx", ".xml") and (folder / runtime).is_file():
        return folder / runtime
    found = sorted(folder.glob("*.onnx"))
    return found[0] if found else None


def artifact_weights(folder: Path, manifest: dict[str, Any], log: Callable[[str], None]) -> list[Finding]:
    graph = artifact_graph(folder, manifest)
    if graph is None:
        return [Finding("info", "check-skipped", f"weights of this {manifest['backend']} artifact are not readable here",
                        "subnormal/NaN values would go unnoticed", "run edgekd doctor on the source checkpoint")]
    log(f"checking weights in {graph.name}")
    state = onnx_weights(graph) if graph.suffix == ".onnx" else openvino_weights(graph)
    return check_weights(state)


def onnx_weights(path: Path) -> dict[str, Any]:
    """Floating-point initializers of an ONNX file as torch tensors (name → tensor)."""
    import onnx
    import torch
    from onnx import numpy_helper

    model = onnx.load(str(path))
    out = {}
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype.kind == "f" and array.dtype.itemsize in (2, 4, 8):
            out[init.name] = torch.from_numpy(array.copy())
    return out


def openvino_weights(path: Path) -> dict[str, Any]:
    """Floating-point constants of an OpenVINO IR as torch tensors (friendly name → tensor)."""
    import openvino as ov
    import torch

    model = ov.Core().read_model(str(path))
    out = {}
    for op in model.get_ops():
        if op.get_type_name() == "Constant":
            data = op.get_data()
            if data.dtype.kind == "f" and data.dtype.itemsize in (2, 4, 8) and data.size > 1:
                out[op.get_friendly_name()] = torch.from_numpy(data.copy())
    return out
