"""Checks on the exported ONNX graph, per target backend.

Static checks read the graph only, against each runtime's published limits:

- TensorRT: the ONNX parser's operator support matrix (onnx/onnx-tensorrt ``docs/operators.md``,
  TensorRT 10.x): unsupported ops, Resize modes, pooling dilations, QDQ zero points;
- Core ML on the Neural Engine: dilated convolutions, gather and recurrent layers are reported
  to run off the ANE (hollance/neural-engine ``docs/unsupported-layers.md``; community findings,
  check with Xcode's performance report), and range-flexible shapes run on the ANE only at their
  default shape (Apple engineer, developer.apple.com/forums/thread/724930); coremltools has no
  bicubic resize;
- every backend: dynamic input dimensions, ops from custom domains, BatchNorm left in the graph.

Runtime checks (OpenVINO op support through ``Core.query_model``, ONNX Runtime session creation,
OpenVINO per-layer profiling on this machine) live in ``edgekd.doctor.graph_runtime``.
"""
from __future__ import annotations

from typing import Any

from edgekd.backends.registry import get_backend
from edgekd.doctor.findings import Finding

# ONNX ops the TensorRT 10.x ONNX parser does not support (onnx-tensorrt docs/operators.md, "N" rows).
TENSORRT_UNSUPPORTED = frozenset((
    "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "CenterCropPad", "Col2Im",
    "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "DynamicQuantizeLinear", "ImageDecoder", "MatMulInteger",
    "MaxRoiPool", "MaxUnpool", "MelWeightMatrix", "Multinomial", "NegativeLogLikelihoodLoss", "Optional",
    "OptionalGetElement", "OptionalHasElement", "QLinearConv", "QLinearMatMul", "RegexFullMatch", "SequenceAt",
    "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert", "SequenceLength", "SequenceMap",
    "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat", "StringNormalizer", "StringSplit", "TfIdfVectorizer", "Unique",
))
TENSORRT_RESIZE_COORDS = frozenset(("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"))
TENSORRT_RESIZE_MODES = frozenset(("nearest", "linear"))
ANE_UNFRIENDLY = {"Gather": "gather", "GatherElements": "gather", "GatherND": "gather", "LSTM": "recurrent layer",
                  "GRU": "recurrent layer", "RNN": "recurrent layer"}
TRT_OPERATORS_SOURCE = "onnx/onnx-tensorrt docs/operators.md (TensorRT 10.x support matrix)"
ANE_SOURCE = "hollance/neural-engine docs/unsupported-layers.md (community findings, may differ per ANE generation)"


def attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _names(nodes: list[Any], limit: int = 8) -> list[str]:
    return [n.name or n.output[0] for n in nodes[:limit]]


def dynamic_inputs(model: Any) -> dict[str, list[str | int]]:
    """Graph inputs (not initializers) with a symbolic or unknown dimension: name → dims."""
    inits = {i.name for i in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]
        if any(not isinstance(d, int) for d in dims):
            out[vi.name] = dims
    return out


def check_dynamic(model: Any, backend: str, device: str) -> list[Finding]:
    dyn = dynamic_inputs(model)
    if not dyn:
        return []
    spatial = any(any(not isinstance(d, int) for d in dims[1:]) for dims in dyn.values())
    shown = ", ".join(f"{k} {v}" for k, v in dyn.items())
    runtime = get_backend(backend)
    why = runtime.dynamic_shape_cost
    severity = "warning" if spatial and runtime.dynamic_spatial_warns else "info"
    return [Finding(severity, "dynamic-shape", f"dynamic input dimension(s) for {backend}: {shown}", why,
                    "export with a fixed input size (edgekd export --input-size HxW, without --dynamic-batch); "
                    "for Core ML use enumerated shapes if several sizes are needed", device=device,
                    details={"inputs": dyn, "spatial": spatial})]


def check_custom_domains(model: Any, backend: str, device: str) -> list[Finding]:
    custom = [n for n in model.graph.node if n.domain not in ("", "ai.onnx")]
    if not custom or get_backend(backend).runs_custom_onnx_domains:
        return []
    ops = sorted({f"{n.domain}::{n.op_type}" for n in custom})
    return [Finding("error", "custom-domain-op", f"{len(custom)} node(s) from non-standard ONNX domains: {', '.join(ops)}",
                    f"{backend} does not know these ops (they usually come from ONNX Runtime graph optimisations or "
                    "a custom exporter) and will refuse the graph", "export the graph without runtime-specific fusions "
                    "(edgekd export writes plain ONNX)", device=device, details={"ops": ops, "nodes": _names(custom)})]


def check_tensorrt(model: Any, device: str) -> list[Finding]:
    findings = []
    bad = [n for n in model.graph.node if n.domain in ("", "ai.onnx") and n.op_type in TENSORRT_UNSUPPORTED]
    if bad:
        ops = sorted({n.op_type for n in bad})
        findings.append(Finding(
            "error", "tensorrt-unsupported-op", f"ops the TensorRT ONNX parser does not support: {', '.join(ops)}",
            "the engine build fails at the first of them (no plugin ships for them)",
            "replace them in the model (e.g. QLinearConv → QDQ + Conv: quantise for TensorRT with its own calibrator), "
            "or write a TensorRT plugin", device=device, details={"ops": ops, "nodes": _names(bad), "source": TRT_OPERATORS_SOURCE}))
    findings += _trt_resize(model, device) + _trt_pool_dilation(model, device) + _trt_zero_points(model, device)
    return findings


def _trt_resize(model: Any, device: str) -> list[Finding]:
    bad = []
    for n in model.graph.node:
        if n.op_type not in ("Resize", "Upsample"):
            continue
        coord = attr(n, "coordinate_transformation_mode", "half_pixel")
        mode = attr(n, "mode", "nearest")
        policy = attr(n, "keep_aspect_ratio_policy", "stretch")
        problems = []
        if coord not in TENSORRT_RESIZE_COORDS:
            problems.append(f"coordinate_transformation_mode={coord}")
        if mode not in TENSORRT_RESIZE_MODES:
            problems.append(f"mode={mode}")
        if attr(n, "antialias", 0):
            problems.append("antialias=1")
        if policy != "stretch":
            problems.append(f"keep_aspect_ratio_policy={policy}")
        if problems:
            bad.append((n.name or n.output[0], problems))
    if not bad:
        return []
    return [Finding("error", "tensorrt-resize-mode", f"{len(bad)} Resize node(s) use modes TensorRT does not support: "
                    + "; ".join(f"{name} ({', '.join(p)})" for name, p in bad[:4]),
                    "the TensorRT ONNX parser rejects them (supported: nearest/linear; half_pixel, pytorch_half_pixel, "
                    "tf_half_pixel_for_nn, asymmetric, align_corners; no antialias)",
                    "use bilinear or nearest interpolation (F.interpolate mode='bilinear', antialias=False) in the model",
                    device=device, details={"nodes": dict(bad), "source": TRT_OPERATORS_SOURCE})]


def _trt_pool_dilation(model: Any, device: str) -> list[Finding]:
    bad = [n for n in model.graph.node if n.op_type in ("MaxPool", "AveragePool", "LpPool")
           and any(d != 1 for d in (attr(n, "dilations") or []))]
    if not bad:
        return []
    return [Finding("error", "tensorrt-pool-dilation", f"{len(bad)} pooling node(s) with dilations",
                    "TensorRT's parser requires pooling dilations to be all ones", "use undilated pooling",
                    device=device, details={"nodes": _names(bad), "source": TRT_OPERATORS_SOURCE})]


def _trt_zero_points(model: Any, device: str) -> list[Finding]:
    import numpy as np
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    bad = []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2 and n.input[2] in inits:
            if np.any(numpy_helper.to_array(inits[n.input[2]]) != 0):
                bad.append(n)
    if not bad:
        return []
    return [Finding("error", "tensorrt-qdq-zero-point", f"{len(bad)} Quantize/DequantizeLinear node(s) with non-zero zero points",
                    "TensorRT supports only symmetric INT8 (zero point 0); ONNX Runtime's default uint8 asymmetric QDQ "
                    "graphs are rejected", "build the TensorRT INT8 engine on the device from the FP32 graph with its "
                    "calibrator (edgekd export --backend tensorrt --precision int8), or quantise symmetrically",
                    device=device, details={"nodes": _names(bad), "source": TRT_OPERATORS_SOURCE})]


def check_coreml(model: Any, device: str) -> list[Finding]:
    findings = []
    dilated = [n for n in model.graph.node if n.op_type in ("Conv", "ConvTranspose") and any(d != 1 for d in (attr(n, "dilations") or []))]
    if dilated:
        rates = sorted({max(attr(n, "dilations")) for n in dilated})
        findings.append(Finding(
            "warning", "ane-dilated-conv", f"{len(dilated)} dilated convolution(s) (dilation {', '.join(map(str, rates))})",
            "dilated convolutions are reported to run off the Neural Engine, splitting the model between ANE and GPU/CPU "
            "(each switch costs a copy); source: " + ANE_SOURCE,
            "confirm with Xcode's Core ML performance report on the device; if they fall back, replace them "
            "(e.g. strided conv + upsampling, or larger plain kernels) in the student", device=device,
            details={"count": len(dilated), "dilations": rates, "nodes": _names(dilated)}))
    other: dict[str, list[Any]] = {}
    for n in model.graph.node:
        if n.op_type in ANE_UNFRIENDLY:
            other.setdefault(ANE_UNFRIENDLY[n.op_type], []).append(n)
    for kind, nodes in other.items():
        findings.append(Finding("warning", "ane-unsupported-op", f"{len(nodes)} {kind} op(s) ({', '.join(sorted({n.op_type for n in nodes}))})",
                                f"{kind} layers are reported not to run on the Neural Engine; source: {ANE_SOURCE}",
                                "check the Core ML performance report; move them out of the per-frame graph if possible",
                                device=device, details={"nodes": _names(nodes)}))
    cubic = [n for n in model.graph.node if n.op_type == "Resize" and attr(n, "mode", "nearest") == "cubic"]
    if cubic:
        findings.append(Finding("error", "coreml-resize-mode", f"{len(cubic)} bicubic Resize node(s)",
                                "Core ML's MIL has bilinear and nearest resize only; conversion fails or changes the op",
                                "use bilinear interpolation in the model", device=device, details={"nodes": _names(cubic)}))
    return findings
