"""Graph checks that ask a runtime installed here, and the BatchNorm check priced by the cost model.

- OpenVINO: ``Core.query_model(model, "CPU")`` names the ops the CPU plugin cannot run; on a
  profile that is this machine, one profiled inference (``PERF_COUNT``) shows the share of time
  spent in reference (non-JIT) kernels, which is where OpenVINO runs slowly.
- ONNX Runtime: creating an ``InferenceSession`` is the authoritative op-support check.
- BatchNorm: a BatchNormalization right after a Conv can be folded into it (runtimes do it at
  load time; the exported file should already have it folded); one after anything else (Concat,
  PReLU, an addition) cannot, and costs a full read and write of its activation every frame.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.doctor.findings import Finding

REF_TIME_WARN = 0.10  # share of inference time in reference kernels that deserves a warning
BN_TRAFFIC_WARN = 0.10  # share of the graph's memory traffic in unfoldable BatchNorm


def check_batchnorm(model: Any, device: str | None = None) -> list[Finding]:
    """BatchNorm nodes by what a runtime can do with them: fold into the conv before them, run as a
    fused post-op of a conv chain (after its ReLU/PReLU), or neither (after Concat, Add...), with the
    FP32 memory traffic the last kind costs per frame."""
    from edgekd.estimate.onnx_cost import graph_cost

    bns = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    if not bns:
        return []
    producer = {o: n for n in model.graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    cost = {c.name: c for c in graph_cost(model).nodes}
    foldable = [n for n in bns if getattr(producer.get(n.input[0]), "op_type", None) in ("Conv", "ConvTranspose")
                and uses.get(n.input[0]) == 1]
    post_op = [n for n in bns if n not in foldable and getattr(cost.get(n.name), "fused", False)]
    fixed = [n for n in bns if n not in foldable and n not in post_op]
    findings = []
    if foldable or post_op:
        findings.append(Finding(
            "info", "bn-not-folded", f"{len(foldable)} BatchNormalization node(s) directly after a Conv and {len(post_op)} "
            "after a conv's activation are left in the file", "ONNX Runtime, OpenVINO and TensorRT fold the first kind into "
            "the conv and run the second as a fused post-op, but converters that do not (and INT8 calibration of the "
            "unfolded conv) see an extra op per layer", "simplify the graph (edgekd export runs onnxslim) or fuse Conv+BN "
            "in PyTorch before export (torch.ao.quantization.fuse_modules)", device=device,
            details={"foldable": [n.name for n in foldable[:8]], "post_op": [n.name for n in post_op[:8]]}))
    if fixed:
        findings.append(_unfoldable(fixed, producer, cost, device))
    return findings


def _unfoldable(fixed: list[Any], producer: dict[str, Any], cost: dict[str, Any], device: str | None) -> Finding:
    traffic = sum(cost[n.name].bytes_moved(4, 4) for n in fixed if n.name in cost)
    total = sum(c.bytes_moved(4, 4) for c in cost.values()) or 1.0
    after = sorted({getattr(producer.get(n.input[0]), "op_type", "input") for n in fixed})
    share = traffic / total
    return Finding(
        "warning" if share > BN_TRAFFIC_WARN else "info", "bn-unfoldable",
        f"{len(fixed)} BatchNormalization node(s) follow {', '.join(after)} and cannot be folded into a conv",
        f"each reads and writes its whole activation: {traffic / 1e6:.1f} MB per frame at FP32, {share:.0%} of the "
        "graph's memory traffic; on memory-bound edge devices that is time", "move the normalisation before the "
        "concatenation / addition (BN per branch, then fold), or fold it into the next conv's weights",
        device=device, details={"count": len(fixed), "after_ops": after, "mb_per_frame_fp32": traffic / 1e6,
                                "traffic_share": share, "nodes": [n.name for n in fixed[:8]]})


def check_onnxruntime(onnx_path: Path, device: str) -> list[Finding]:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises several types; any of them means the graph will not load
        return [Finding("error", "onnxruntime-load-failed", f"ONNX Runtime {ort.__version__} refused the graph: {str(err)[:300]}",
                        "the artifact cannot run with ONNX Runtime", "re-export with another opset (--opset) or "
                        "exporter (--exporter torchscript)", device=device)]
    return []


def check_openvino(onnx_path: Path, device: str, *, local: bool, threads: int | None = None) -> list[Finding]:
    """Op support on the CPU plugin; on this machine also the measured share of time in reference kernels."""
    import openvino as ov

    core = ov.Core()
    try:
        model = core.read_model(str(onnx_path))
    except Exception as err:  # the ONNX frontend raises plain RuntimeErrors naming the op
        return [Finding("error", "openvino-read-failed", f"OpenVINO {ov.get_version()} cannot read the graph: {str(err)[:300]}",
                        "the model cannot be converted for OpenVINO", "re-export with --exporter torchscript or another opset",
                        device=device)]
    supported = core.query_model(model, "CPU")
    missing = sorted({op.get_type_name() for op in model.get_ops()
                      if op.get_friendly_name() not in supported and op.get_type_name() not in ("Parameter", "Result", "Constant")})
    if missing:
        return [Finding("error", "openvino-unsupported-op", f"the OpenVINO CPU plugin cannot run: {', '.join(missing)}",
                        "compile_model fails on the CPU device", "replace those ops in the model",
                        device=device, details={"ops": missing})]
    return _openvino_reference_kernels(core, model, device, threads) if local else []


def _openvino_reference_kernels(core: Any, model: Any, device: str, threads: int | None) -> list[Finding]:
    """Profile one f32 inference with subnormals flushed (so subnormal weights do not skew the shares).

    ``CPU_DENORMALS_OPTIMIZATION`` switches FTZ/DAZ on in the calling thread and leaves it on, which
    would silently speed up (and change) everything the process computes afterwards, so the
    thread's previous mode is restored.
    """
    import torch

    from edgekd.core.subnormal import denormals_flushed

    was_flushed = denormals_flushed()
    try:
        return _profile_reference_kernels(core, model, device, threads)
    finally:
        torch.set_flush_denormal(was_flushed)


def _profile_reference_kernels(core: Any, model: Any, device: str, threads: int | None) -> list[Finding]:
    config: dict[str, Any] = {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": "f32", "CPU_DENORMALS_OPTIMIZATION": True}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if any(not d.is_static for d in model.input(0).get_partial_shape()):
        return []  # profiling needs a concrete shape; the dynamic-shape finding covers this graph
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    shape = [d.get_length() for d in model.input(0).get_partial_shape()]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    request.infer({0: x})  # first call allocates; profile the second
    request.infer({0: x})
    infos = [p for p in request.get_profiling_info() if p.status.name == "EXECUTED"]
    total = sum(p.real_time.total_seconds() for p in infos) or 1e-9
    ref = [p for p in infos if p.exec_type.startswith("ref")]
    ref_time = sum(p.real_time.total_seconds() for p in ref)
    if not ref or ref_time / total < 0.01:
        return []
    by_type: dict[str, float] = {}
    for p in ref:
        by_type[p.node_type] = by_type.get(p.node_type, 0.0) + p.real_time.total_seconds()
    share = ref_time / total
    listing = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(by_type.items(), key=lambda kv: -kv[1]))
    return [Finding("warning" if share > REF_TIME_WARN else "info", "openvino-reference-kernels",
                    f"{share:.0%} of OpenVINO CPU time (f32, profiled here) is in reference kernels: {listing}",
                    "reference implementations are the plugin's slow generic path (no JIT/oneDNN kernel for that op or layout)",
                    "replace or restructure those ops (e.g. fewer concatenations of non-aligned channel counts); "
                    "compare `benchmark_app -pc` on the target CPU", device=device,
                    details={"share": share, "by_type_ms": {k: 1e3 * v for k, v in by_type.items()}, "total_ms": 1e3 * total})]
