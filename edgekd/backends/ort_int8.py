"""ONNX Runtime INT8 under an accuracy budget: BatchNorm in float, calibration by measurement, sensitive layers in float.

The steps, each measured on the export's labelled validation images against the FP32 graph:

1. ``quant_pre_process`` (shape inference + ORT's basic optimiser, which folds every BatchNorm
   that follows a convolution). A BatchNorm that survives (CGNet's and ESPNet's BN after a
   concat + PReLU) is never quantised: ORT would treat its scale as a per-channel weight
   ("Axis 1 is out-of-range for weight 'b1.bn.weight'") and wreck the class map, so
   ``BatchNormalization`` is left out of ``op_types_to_quantize`` and runs in float between a
   DequantizeLinear and a QuantizeLinear.
   A Concat whose inputs' calibrated ranges differ by more than ``MIXED_RANGE_RATIO`` (CGNet's
   features joined with the raw down-sampled image) is kept in float too: its one output scale
   would leave the narrow inputs on a few levels (``mixed_range_concats``).
2. Each calibration method (MinMax, percentile, entropy — those the image count allows) is
   calibrated once (ranges cached with ``calibration_cache_path``) and scored; the best is kept.
3. If the drop is over budget, a sensitivity pass (``onnxruntime.quantization.qdq_loss_debug``)
   ranks every quantised activation and weight by its own signal-to-quantisation-noise ratio;
   the nodes around the worst ones are kept in float (``nodes_to_exclude``), 1, 2, 4, … at a
   time, re-quantised from the cached ranges, until the budget is met or the ranking runs out.
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekd.backends.calibration import CalibrationBatches
from edgekd.backends.int8_budget import Budget, Trial, gate_failure, gate_record, methods_for, miou_points, resolve_budget
from edgekd.backends.onnx_export import INPUT_NAME, converter_error
from edgekd.errors import EdgekdError

ORT_METHODS = ("minmax", "percentile", "entropy")
SENSITIVITY_IMAGES = 2
MIXED_RANGE_RATIO = 16.0  # a concat input narrower than 1/16 of the widest gets < 16 of the 256 levels of the shared scale
_INT8_DOT_ISA = {"avx512_vnni", "avx_vnni", "amx_int8"}


def resolve_reduce_range(option: Any, isa: list[str] | None = None) -> tuple[bool, str]:
    """Whether to quantise weights to 7 bits (``reduce_range``), and why.

    On an x86 CPU without VNNI, ONNX Runtime's U8S8 convolutions use VPMADDUBSW, which adds two
    u8×s8 products into a saturating int16: with full 8-bit weights the sums clip and the class map
    degrades (ESPNet on an AVX2-only EPYC: INT8 11.6 mIoU points below FP32, whatever the
    calibration). 7-bit weights keep every pair sum in range. ``auto`` (the default) turns it on
    exactly there, since the export's accuracy check runs on this CPU; VNNI CPUs and ARM do not
    saturate and keep the full 8 bits.
    """
    value = "auto" if option is None else str(option).lower()
    if value in ("on", "true", "1", "yes"):
        return True, "on (asked)"
    if value in ("off", "false", "0", "no"):
        return False, "off (asked)"
    if value != "auto":
        raise EdgekdError(f"reduce_range {option!r}: use auto, on or off (e.g. --option reduce_range=on)")
    if isa is None:
        from edgekd.core.host import cpu_features

        isa = cpu_features().get("isa") or []
    if "avx2" in isa and not _INT8_DOT_ISA & set(isa):
        return True, "auto: on, this x86 CPU has no VNNI (8-bit weights would saturate ONNX Runtime's int16 pair sums)"
    return False, "auto: off (VNNI or a non-x86 CPU: no int16 saturation)"


def quantized_op_types() -> list[str]:
    """Every op type ORT's QDQ quantiser handles, minus BatchNormalization (kept in float)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted((set(QDQRegistry) | set(QLinearOpsRegistry)) - {"BatchNormalization"})


def prepare(src: Path, dst: Path) -> list[str]:
    """Shape inference + BatchNorm folding into ``dst``; returns the BatchNorm nodes that stay (in float)."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with contextlib.redirect_stdout(io.StringIO()):
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
    return [n.name for n in onnx.load(str(dst)).graph.node if n.op_type == "BatchNormalization"]


def _reader(batches: CalibrationBatches):
    from edgekd.backends.onnxruntime import _reader as reader

    return reader(batches)


def _width(low: float, high: float) -> float:
    """Span of a calibrated range as the quantiser sees it (zero is always representable)."""
    return max(high, 0.0) - min(low, 0.0)


def mixed_range_concats(prepared: Path, cache: Path, ratio: float = MIXED_RANGE_RATIO) -> list[dict[str, Any]]:
    """Concats whose calibrated inputs span ranges more than ``ratio`` apart, with the evidence.

    A quantised Concat gets one per-tensor scale for its output, set by its widest input. When a
    concat joins features in ±1 with the raw down-sampled image in ±150 (CGNet's input injection:
    mean-subtracted pixels, std 1), the features fall on one or two levels of that scale and the
    model collapses (CGNet on CamVid: 86.4 → 4.9 mIoU on 10 val images, whatever the calibration
    method or the optimisation level). Such a concat is kept in float; the convolutions around it
    stay INT8.
    """
    import onnx
    from onnxruntime.quantization.calibrate import load_tensors_data

    ranges = load_tensors_data(cache).data
    found = []
    for node in onnx.load(str(prepared)).graph.node:
        if node.op_type != "Concat" or not all(name in ranges for name in node.input):
            continue
        spans = [tuple(float(v) for v in np.ravel(ranges[name].range_value)) for name in node.input]
        widths = [_width(lo, hi) for lo, hi in spans]
        if min(widths) > 0 and max(widths) / min(widths) > ratio:
            found.append({"node": node.name, "input_ranges": [[round(lo, 4), round(hi, 4)] for lo, hi in spans],
                          "range_ratio": round(max(widths) / min(widths), 1)})
    return found


def quantize(prepared: Path, dst: Path, *, method: str, cache: Path, batches: CalibrationBatches | None,
             exclude: list[str], symmetric: bool = False, reduce_range: bool = False) -> list[dict[str, Any]]:
    """QDQ INT8 of ``prepared`` into ``dst``, mixed-range concats in float; returns those concats.

    Calibrates into ``cache`` the first time, reuses it after; the concats are found from the
    cached ranges, so the first call quantises once more (from the cache) when it finds any.
    """
    _quantize_static(prepared, dst, method=method, cache=cache, batches=batches, exclude=exclude, symmetric=symmetric,
                     reduce_range=reduce_range)
    mixed = [c for c in mixed_range_concats(prepared, cache) if c["node"] not in exclude]
    if mixed:
        _quantize_static(prepared, dst, method=method, cache=cache, batches=None,
                         exclude=list(exclude) + [c["node"] for c in mixed], symmetric=symmetric, reduce_range=reduce_range)
    return mixed


def _quantize_static(prepared: Path, dst: Path, *, method: str, cache: Path, batches: CalibrationBatches | None,
                     exclude: list[str], symmetric: bool = False, reduce_range: bool = False) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from edgekd.backends.onnxruntime import collection_stride

    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy, "percentile": CalibrationMethod.Percentile}
    reader = None if cache.is_file() else _reader(batches)
    extra = {"ActivationSymmetric": symmetric, "WeightSymmetric": True}
    if reader is not None:
        extra["CalibStridedMinMax"] = collection_stride(len(batches))
    logging.getLogger().setLevel(logging.ERROR)  # ORT logs one warning per excluded node
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True, reduce_range=reduce_range,
                activation_type=QuantType.QInt8 if symmetric else QuantType.QUInt8, weight_type=QuantType.QInt8,
                op_types_to_quantize=quantized_op_types(), nodes_to_exclude=list(exclude),
                calibrate_method=methods[method], calibration_cache_path=str(cache), extra_options=extra,
            )
    except ValueError as err:
        if "Too many bins" not in str(err):
            raise converter_error("onnxruntime.quantization.quantize_static", err, "try another --calib-method") from err
        raise EdgekdError(f"--calib-method {method} cannot histogram an activation whose values span almost no range "
                          f"(ONNX Runtime: {err}); typical of untrained weights — use --calib-method minmax") from err
    except EdgekdError:
        raise
    except Exception as err:
        raise converter_error("onnxruntime.quantization.quantize_static", err, "try another --calib-method") from err


def session(path: Path, optimized_path: Path | None = None):
    """A CPU session as an app would run it (all graph optimisations, subnormals flushed)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    if optimized_path is not None:
        so.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def runtime_graph(path: Path, work: Path) -> dict[str, int]:
    """Op counts of the graph ONNX Runtime really runs: QLinearConv etc. show the QDQ pairs it fused."""
    import onnx

    optimized = work / "optimized.onnx"
    session(path, optimized)
    counts: dict[str, int] = {}
    for node in onnx.load(str(optimized)).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _groups(prepared: Path, errors: list[tuple[str, float]]) -> list[tuple[str, float, list[str]]]:
    """(tensor, SQNR dB, quantisable nodes around it) worst first; a node appears in the first group that needs it."""
    import onnx

    graph = onnx.load(str(prepared)).graph
    quantized = set(quantized_op_types())
    producers = {out: n for n in graph.node for out in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    seen: set[str] = set()
    groups = []
    for tensor, sqnr in sorted(errors, key=lambda kv: kv[1]):
        around = ([producers[tensor]] if tensor in producers else []) + consumers.get(tensor, [])
        nodes = [n.name for n in around if n.op_type in quantized and n.name not in seen]
        if nodes:
            seen.update(nodes)
            groups.append((tensor, round(float(sqnr), 2), nodes))
    return groups


def sensitivity(prepared: Path, qdq: Path, images: np.ndarray, work: Path) -> list[tuple[str, float, list[str]]]:
    """Quantised activations and weights ranked by their own SQNR (qdq_loss_debug), worst first."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations, compute_signal_to_quantization_noice_ratio, compute_weight_error, create_activation_matching,
        create_weight_matching, modify_model_output_intermediate_tensors,
    )

    augmented = work / "augmented.onnx"
    modify_model_output_intermediate_tensors(str(qdq), str(augmented))
    feeds = [{INPUT_NAME: images[i:i + 1]} for i in range(len(images))]
    activations = collect_activations(str(augmented), iter(feeds))
    matching = create_activation_matching(activations)
    act_err = {name: compute_signal_to_quantization_noice_ratio(m["pre_qdq"], m["post_qdq"]) for name, m in matching.items()}
    del activations, matching
    weight_err = compute_weight_error(create_weight_matching(str(prepared), str(qdq)))
    errors = list(act_err.items()) + list(weight_err.items())
    return _groups(prepared, [(n, v) for n, v in errors if np.isfinite(v)])


def search(src: Path, dst: Path, batches: CalibrationBatches, *, method: str, budget_option: Any,
           val_images: np.ndarray | None, val_masks: np.ndarray | None, num_classes: int, ignore_index: int | None,
           symmetric: bool = False, reduce_range: Any = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """INT8 of ``src`` into ``dst`` within the budget; returns the manifest fields. Raises AccuracyGateError."""
    log = log or (lambda message: None)
    reduce, reduce_reason = resolve_reduce_range(reduce_range)
    log(f"onnxruntime INT8: reduce_range {reduce_reason}")
    q = dict(symmetric=symmetric, reduce_range=reduce)

    def fields_of(*args) -> dict[str, Any]:
        return _fields(*args, symmetric=symmetric, reduce_range=(reduce, reduce_reason))

    methods, skipped = methods_for(method, batches.num_images_used, ORT_METHODS)
    with tempfile.TemporaryDirectory(prefix="edgekd-ort-int8-") as tmp:
        work = Path(tmp)
        prepared = work / "prepared.onnx"
        float_bn = prepare(src, prepared)
        labelled = val_images is not None and val_masks is not None and len(val_images) > 0
        if not labelled:  # no labelled images: one method, no gate (the pipeline records why)
            mixed = quantize(prepared, dst, method=methods[0], cache=work / f"{methods[0]}.cache", batches=batches, exclude=[], **q)
            return fields_of(methods[0], batches, float_bn, [], None, skipped, runtime_graph(dst, work), mixed)

        def score(path: Path) -> float:
            s = session(path)
            name = s.get_inputs()[0].name
            return miou_points(lambda x: s.run(None, {name: x})[0], val_images, val_masks,
                               num_classes=num_classes, ignore_index=ignore_index)

        fp32 = score(prepared)
        budget = resolve_budget(budget_option, fp32)
        trials: list[Trial] = []
        for name in methods:
            out = work / f"{name}.onnx"
            mixed = quantize(prepared, out, method=name, cache=work / f"{name}.cache", batches=batches, exclude=[], **q)
            miou = score(out)
            trials.append(Trial(name, miou, fp32 - miou, [], {"method": name, "mixed_range_concats": mixed}))
            log(f"onnxruntime INT8 [{name}]: mIoU {miou:.2f} vs FP32 {fp32:.2f} (drop {fp32 - miou:.2f}, budget {budget.points})")
        best = max(trials, key=lambda t: t.miou)
        best_path = work / f"{best.label}.onnx"
        if not budget.met(best.drop):
            best, best_path, ranking = _exclude_sensitive(prepared, work, batches, best, budget, trials, score, val_images, log, q)
            if not budget.met(best.drop):
                raise gate_failure("onnxruntime", budget, best, len(trials))
        else:
            ranking = []
        dst.write_bytes(best_path.read_bytes())
        gate = gate_record(budget, best, trials, images=len(val_images), measured_as="ONNX Runtime INT8 vs ONNX Runtime FP32 (same graph)")
        if ranking:
            gate["sensitivity"] = [{"tensor": t, "sqnr_db": s, "nodes": n} for t, s, n in ranking[:20]]
        mixed = next(t for t in trials if t.label == best.details["method"]).details["mixed_range_concats"]
        return fields_of(best.details["method"], batches, float_bn, best.float_layers, gate, skipped, runtime_graph(dst, work), mixed)


def _exclude_sensitive(prepared: Path, work: Path, batches: CalibrationBatches, start: Trial, budget: Budget,
                       trials: list[Trial], score: Callable[[Path], float], val_images: np.ndarray, log: Callable[[str], None],
                       q: dict[str, bool]):
    """Keep the worst-ranked nodes in float, 1, 2, 4, … groups, until the budget is met."""
    method = start.details["method"]
    ranking = sensitivity(prepared, work / f"{method}.onnx", val_images[:SENSITIVITY_IMAGES], work)
    best, best_path = start, work / f"{method}.onnx"
    limit = max(1, len(ranking) // 2)  # past half the graph in float, it is no longer an INT8 model
    count = 1
    while count <= limit:
        exclude = [node for _, _, nodes in ranking[:count] for node in nodes]
        out = work / f"{method}-float{count}.onnx"
        quantize(prepared, out, method=method, cache=work / f"{method}.cache", batches=batches, exclude=exclude, **q)
        miou = score(out)
        fp32 = budget.fp32_miou
        trial = Trial(f"{method}, {len(exclude)} nodes in float", miou, fp32 - miou, exclude, {"method": method, "groups": count})
        trials.append(trial)
        log(f"onnxruntime INT8 [{trial.label}]: mIoU {miou:.2f} (drop {fp32 - miou:.2f}, budget {budget.points})")
        if trial.miou > best.miou or (budget.met(trial.drop) and not budget.met(best.drop)):
            best, best_path = trial, out
        if budget.met(trial.drop):
            best, best_path = trial, out
            break
        if count == limit:
            break
        count = min(2 * count, limit)
    return best, best_path, ranking


def _fields(method: str, batches: CalibrationBatches, float_bn: list[str], float_layers: list[str], gate: dict[str, Any] | None,
            skipped: list[str], graph: dict[str, int], mixed: list[dict[str, Any]], *, symmetric: bool,
            reduce_range: tuple[bool, str]) -> dict[str, Any]:
    reduced, reduce_reason = reduce_range
    quant = {
        "method": method, "format": "QDQ", "per_channel": True, "num_images": batches.num_images_used,
        "activations": "int8 symmetric" if symmetric else "uint8 asymmetric",
        "weights": "int8 symmetric per-channel" + (", 7-bit range (reduce_range)" if reduced else ""), "reduce_range": reduce_reason,
        "batchnorm_in_float": float_bn, "float_layers": float_layers, "runtime_graph": graph,
        "concat_in_float": [{**c, "reason": f"inputs' calibrated ranges differ by more than {MIXED_RANGE_RATIO:g}x: one shared "
                                            "output scale would leave the narrow input on a few levels"} for c in mixed],
    }
    if skipped:
        quant["methods_not_tried"] = {m: f"fewer calibration images than {m} needs" for m in skipped}
    fields: dict[str, Any] = {"quantization": quant, "calibration": {"method": method}}
    if gate is not None:
        fields["accuracy_gate"] = gate
    return fields


def from_qat(src: Path, qdq: Path, dst: Path, *, budget_option: Any, val_images: np.ndarray | None, val_masks: np.ndarray | None,
             num_classes: int, ignore_index: int | None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """INT8 of a QAT checkpoint: its QDQ graph as trained (no calibration, no search), gated against the FP32 graph.

    ``src`` is the FP32 graph of the same weights without quantisers; the budget is the one of every
    INT8 export. Nothing can be re-quantised here, so an unmet budget fails with the drop reached.
    """
    import onnx

    log = log or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="edgekd-ort-qat-") as tmp:
        work = Path(tmp)
        graph = onnx.load(str(qdq)).graph
        float_bn = [n.name for n in graph.node if n.op_type == "BatchNormalization"]
        quant = {"method": "qat", "format": "QDQ (NNCF quantisers of the checkpoint)", "per_channel": True, "num_images": 0,
                 "activations": "int8 per-tensor", "weights": "int8 symmetric per-channel", "batchnorm_in_float": float_bn,
                 "float_layers": [], "runtime_graph": runtime_graph(qdq, work)}
        fields: dict[str, Any] = {"quantization": quant, "calibration": {"method": "qat (scales trained, stored in the checkpoint)"}}
        if val_images is not None and val_masks is not None and len(val_images) > 0:
            def score(path: Path) -> float:
                s = session(path)
                name = s.get_inputs()[0].name
                return miou_points(lambda x: s.run(None, {name: x})[0], val_images, val_masks,
                                   num_classes=num_classes, ignore_index=ignore_index)

            fp32, miou = score(src), score(qdq)
            budget = resolve_budget(budget_option, fp32)
            best = Trial("qat", miou, fp32 - miou, [], {"method": "qat"})
            log(f"onnxruntime INT8 [qat]: mIoU {miou:.2f} vs FP32 {fp32:.2f} (drop {best.drop:.2f}, budget {budget.points})")
            if not budget.met(best.drop):
                raise gate_failure("onnxruntime", budget, best, 1)
            fields["accuracy_gate"] = gate_record(budget, best, [best], images=len(val_images),
                                                  measured_as="ONNX Runtime QAT INT8 vs ONNX Runtime FP32 of the same weights")
    dst.write_bytes(qdq.read_bytes())
    return fields
