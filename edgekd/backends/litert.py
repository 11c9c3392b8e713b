"""LiteRT (TensorFlow Lite): ``.tflite`` from ``litert-torch``, run by ``ai-edge-litert`` with XNNPACK.

Conversion goes straight from the PyTorch module (``litert_torch.convert``, which lowers a
``torch.export`` program through MLIR): no ONNX → TensorFlow hop, so no TensorFlow install and
no second graph to keep in sync (docs/export.md says why this converter). FP16 weights and INT8
come from ``ai-edge-quantizer`` on the converted FP32 flatbuffer: FP16 = weight-only float casting;
INT8 = full-integer (int8 weights and activations, ranges calibrated on real images) or, with
``litert_int8=dynamic_range``, int8 weights with activations quantised on the fly.

The interpreter applies the XNNPACK delegate by default; which of the graph's ops it took (and
which fell back to LiteRT's reference kernels) is read from the delegated interpreter's nodes and
written to the manifest at export. The same XNNPACK library is LiteRT's CPU path on Android.
"""
from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest, Session, artifact_manifest
from edgekd.backends.calibration import CalibrationBatches
from edgekd.backends.onnx_export import converter_error
from edgekd.errors import EdgekdError

MODEL_FILE = "model.tflite"
INT8_MODES = ("full_integer", "dynamic_range")
INSTALL = "pip install 'edgekd[litert]'"
SIGNATURE = "serving_default"


def _interpreter_module():
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            from ai_edge_litert import interpreter
    except ImportError as err:
        raise BackendUnavailable(f"ai-edge-litert (the LiteRT interpreter) is not installed ({err}); {INSTALL}") from err
    return interpreter


def _litert_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ai-edge-litert")
    except PackageNotFoundError as err:
        raise BackendUnavailable(f"ai-edge-litert is not installed; {INSTALL}") from err


def _converter():
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import litert_torch
    except ImportError as err:
        raise BackendUnavailable(f"litert-torch (the PyTorch → LiteRT converter) is not installed ({err}); {INSTALL}") from err
    return litert_torch


def _quantizer():
    try:
        from ai_edge_quantizer import quantizer, recipe, recipe_manager
    except ImportError as err:
        raise BackendUnavailable(f"ai-edge-quantizer (LiteRT FP16/INT8) is not installed ({err}); {INSTALL}") from err
    return quantizer, recipe, recipe_manager


@contextlib.contextmanager
def _quiet_native():
    """Silence the converter's and runtime's C++ logging (fd 1 and 2) while a block runs."""
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def make_interpreter(path: Path, threads: int | None, xnnpack: bool = True) -> Any:
    """An allocated interpreter; ``xnnpack=False`` keeps LiteRT's built-in kernels only (no default delegate)."""
    interpreter = _interpreter_module()
    resolver = interpreter.OpResolverType.AUTO if xnnpack else interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with _quiet_native():
        it = interpreter.Interpreter(model_path=str(path), num_threads=int(threads) if threads else None,
                                     experimental_op_resolver_type=resolver)
        it.allocate_tensors()
    return it


def delegation(it: Any) -> dict[str, Any]:
    """Which ops the delegate took: each DELEGATE node's partition is found by walking back from
    its outputs to its inputs through the original nodes' producers.

    Returns counts per op type (``[delegated, not delegated]``), the partitions and the op types
    left to LiteRT's own kernels; ``delegated_nodes`` of 0 means XNNPACK took nothing.
    """
    ops = it._get_ops_details()  # noqa: SLF001 — the interpreter's documented (experimental) node listing
    original = [o for o in ops if o["op_name"] != "DELEGATE"]
    producer = {int(t): o["index"] for o in original for t in o["outputs"]}
    by_index = {o["index"]: o for o in original}
    delegated: set[int] = set()
    for node in (o for o in ops if o["op_name"] == "DELEGATE"):
        boundary = {int(t) for t in node["inputs"]}
        stack = [int(t) for t in node["outputs"]]
        while stack:
            tensor = stack.pop()
            index = producer.get(tensor)
            if tensor in boundary or index is None or index in delegated:
                continue
            delegated.add(index)
            stack.extend(int(t) for t in by_index[index]["inputs"] if int(t) >= 0)
    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for o in original:
        counts[o["op_name"]][0 if o["index"] in delegated else 1] += 1
    return {
        "delegate": "XNNPACK (LiteRT default CPU delegate)", "partitions": len(ops) - len(original),
        "total_nodes": len(original), "delegated_nodes": len(delegated), "not_delegated_nodes": len(original) - len(delegated),
        "by_op": {k: {"delegated": v[0], "not_delegated": v[1]} for k, v in sorted(counts.items())},
        "not_delegated_ops": sorted(k for k, v in counts.items() if v[1]),
    }


def graph_facts(path: Path) -> dict[str, Any]:
    """Input/output shapes (``shape_signature``: -1 marks a dynamic dimension) and dtypes of a .tflite."""
    it = make_interpreter(path, threads=1, xnnpack=False)
    def io_list(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name": d["name"], "shape": [int(v) for v in d["shape_signature"]], "dtype": np.dtype(d["dtype"]).name}
                for d in details]
    return {"inputs": io_list(it.get_input_details()), "outputs": io_list(it.get_output_details()),
            "op_count": len(it._get_ops_details())}  # noqa: SLF001


def _fp16_recipe(recipe_manager: Any) -> Any:
    """Weight-only float casting to 16 bits: FP16 weights, dequantised to FP32 before compute."""
    from ai_edge_quantizer import algorithm_manager, qtyping

    manager = recipe_manager.RecipeManager()
    manager.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                   algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    return manager.get_quantization_recipe()


def _full_integer_recipe(recipe_manager: Any) -> Any:
    """``static_wi8_ai8`` with per-tensor TRANSPOSE_CONV weights.

    ai-edge-quantizer 0.10 quantises a TRANSPOSE_CONV bias of shape 1×1×1×C per channel, which
    the interpreter refuses at load ("num_scales must be 1 for per-layer quantization ... got 12"
    on ESPNet's up-sampling convolutions) and fails on a per-tensor one (rank mismatch), so
    transposed convolutions stay FP32 here and the manifest says so.
    """
    from ai_edge_quantizer import algorithm_manager, qtyping

    manager = recipe_manager.RecipeManager()
    ops = qtyping.TFLOperationName
    manager.add_static_config(regex=".*", operation_name=ops.ALL_SUPPORTED, activation_num_bits=8, weight_num_bits=8)
    manager.add_quantization_config(regex=".*", operation_name=ops.CONV_2D_TRANSPOSE,
                                    algorithm_key=algorithm_manager.AlgorithmName.NO_QUANTIZE)
    return manager.get_quantization_recipe()


def quantize(float_path: Path, dst: Path, precision: str, mode: str, batches: CalibrationBatches | None) -> dict[str, Any]:
    """FP16 weights or INT8 with ai-edge-quantizer; full-integer INT8 calibrates on ``batches``."""
    quantizer, recipe, recipe_manager = _quantizer()
    from importlib.metadata import version

    qt = quantizer.Quantizer(str(float_path))
    if precision == "fp16":
        qt.load_quantization_recipe(_fp16_recipe(recipe_manager))
        info = {"recipe": "weight-only float casting, 16 bits", "weights": "fp16", "activations": "fp32"}
    elif mode == "dynamic_range":
        qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        info = {"recipe": "dynamic_wi8_afp32", "weights": "int8 symmetric per-channel",
                "activations": "fp32, quantised to int8 on the fly per inference"}
    else:
        qt.load_quantization_recipe(_full_integer_recipe(recipe_manager))
        info = {"recipe": "static_wi8_ai8 (min-max calibration); TRANSPOSE_CONV left fp32",
                "weights": "int8 symmetric per-channel (TRANSPOSE_CONV fp32)",
                "activations": "int8 (ranges from calibration)", "num_images": batches.num_images_used}
    with _quiet_native():
        calibration = None
        if qt.need_calibration:
            input_name = _input_name(float_path)
            data = {SIGNATURE: [{input_name: b} for b in batches]}
            calibration = qt.calibrate(data, num_threads=1)
        result = qt.quantize(calibration, enable_progress_report=False)
        result.export_model(str(dst), overwrite=True)
    return {**info, "tool": f"ai-edge-quantizer {version('ai-edge-quantizer')}"}


def _input_name(path: Path) -> str:
    it = make_interpreter(path, threads=1, xnnpack=False)
    return next(iter(it.get_signature_list()[SIGNATURE]["inputs"]))


class LiteRTBackend(Backend):
    name = "litert"
    doctor_checks = ("mobile-artifact",)
    precisions = ("fp32", "fp16", "int8")
    pip_extra = "litert"
    runtime_options = {
        "threads": "interpreter num_threads, shared with the XNNPACK delegate (default: LiteRT's choice)",
        "xnnpack": "apply the default XNNPACK delegate (default true; false = LiteRT's built-in kernels only)",
    }
    export_options = {"litert_int8": f"{' | '.join(INT8_MODES)} (default full_integer: int8 activations calibrated on real images)"}
    export_group = "LiteRT (Android; XNNPACK on the CPU)"

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        return {} if runtime.threads is None else {"threads": runtime.threads}

    def is_available(self) -> tuple[bool, str]:
        try:
            _interpreter_module()
        except BackendUnavailable as err:
            return False, str(err)
        return True, ""

    def version(self) -> str:
        return _litert_version()

    def export(self, request: ExportRequest) -> dict[str, Any]:
        converter = _converter()
        mode = request.options.get("litert_int8", "full_integer")
        if mode not in INT8_MODES:
            from edgekd.backends.registry import nearest

            raise EdgekdError(f"--litert-int8 {mode!r}{nearest(mode, list(INT8_MODES))} is not one of {', '.join(INT8_MODES)}")
        if request.dynamic_batch:
            raise EdgekdError("LiteRT export uses a fixed batch of 1 (one camera frame); drop --dynamic-batch for litert")
        dst = request.out_dir / MODEL_FILE
        with tempfile.TemporaryDirectory(prefix="edgekd-litert-") as tmp:
            float_path = dst if request.precision == "fp32" else Path(tmp) / "float.tflite"
            self._convert(converter, request, float_path)
            quant = None
            if request.precision != "fp32":
                batches = CalibrationBatches(request.calib_images, batch_size=1) if request.precision == "int8" else None
                try:
                    quant = quantize(float_path, dst, request.precision, mode, batches)
                except EdgekdError:
                    raise
                except Exception as err:
                    raise converter_error("ai_edge_quantizer", err, "try --litert-int8 dynamic_range, or export int8 with onnxruntime") from err
        it = make_interpreter(dst, threads=1)
        fields: dict[str, Any] = {
            "runtime_file": MODEL_FILE, "converter": f"litert-torch {getattr(converter, '__version__', '?')} litert_torch.convert",
            "precision_used": self._precision_used(request.precision, mode), "delegation": delegation(it),
            "litert": {"graph": graph_facts(dst), "signature": SIGNATURE, "int8_mode": mode if request.precision == "int8" else None},
        }
        if quant:
            fields["quantization"] = quant
            if request.precision == "int8":
                fields["calibration"] = {"method": quant["recipe"]} if mode == "full_integer" else None
        return fields

    @staticmethod
    def _precision_used(precision: str, mode: str) -> str:
        if precision == "fp32":
            return "fp32"
        if precision == "fp16":
            return "fp16 weights (dequantised to fp32), fp32 compute"
        return "int8 weights, int8 activations (full integer)" if mode == "full_integer" else \
            "int8 weights, dynamic-range int8 activations, fp32 elsewhere"

    def _convert(self, converter: Any, request: ExportRequest, path: Path) -> None:
        import torch

        h, w = request.input_size
        try:
            with _quiet_native():
                logging.getLogger("absl").setLevel(logging.ERROR)
                edge = converter.convert(request.model.eval(), (torch.zeros(1, 3, h, w),))
                edge.export(str(path))
        except Exception as err:
            raise converter_error("litert_torch.convert", err, "replace that op, or export another backend") from err

    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session:
        self.check_runtime_options(runtime_options)
        return LiteRTSession(Path(artifact_dir) / MODEL_FILE, artifact_manifest(artifact_dir), **runtime_options)


class LiteRTSession(Session):
    """One interpreter (batch 1, the shape it was converted at); frames of a batch run one by one."""

    def __init__(self, path: Path, manifest: dict[str, Any], *, threads: int | None = None, xnnpack: bool = True) -> None:
        if not path.is_file():
            raise EdgekdError(f"{path} does not exist; is {path.parent} a litert artifact made by `edgekd export`?")
        self.it = make_interpreter(path, threads, bool(xnnpack))
        inp, out = self.it.get_input_details()[0], self.it.get_output_details()[0]
        self._input, self._output = inp["index"], out["index"]
        # a full-integer model takes and returns int8: quantise/dequantise with the tensors' own parameters
        self._in_dtype, (self._in_scale, self._in_zero) = np.dtype(inp["dtype"]), inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]
        self.threads, self.xnnpack = threads, bool(xnnpack)
        self.precision = manifest.get("precision_used", manifest.get("precision", "fp32"))
        self.delegation = delegation(self.it)

    def run(self, x: np.ndarray) -> np.ndarray:
        outs = []
        for frame in x:
            value = np.ascontiguousarray(frame[None], dtype=np.float32)
            if self._in_dtype.kind == "i":
                info = np.iinfo(self._in_dtype)
                value = np.clip(np.rint(value / self._in_scale + self._in_zero), info.min, info.max).astype(self._in_dtype)
            self.it.set_tensor(self._input, value)
            self.it.invoke()
            result = self.it.get_tensor(self._output)
            if result.dtype.kind == "i":
                result = (result.astype(np.float32) - self._out_zero) * self._out_scale
            outs.append(result)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        d = self.delegation
        return {
            "backend": "litert", "backend_version": _litert_version(), "device": "CPU",
            "provider": "XNNPACK delegate" if self.xnnpack and d["delegated_nodes"] else "LiteRT built-in kernels",
            "precision": self.precision, "threads": self.threads or "LiteRT default (num_threads unset)",
            "xnnpack": self.xnnpack, "delegated_nodes": d["delegated_nodes"], "total_nodes": d["total_nodes"],
            "partitions": d["partitions"], "not_delegated_ops": d["not_delegated_ops"],
        }
