"""ONNX Runtime: FP32 from the exported graph, INT8 by static QDQ quantisation on real images.

INT8 export runs ``edgekd.backends.ort_int8.search`` (BatchNorm in float, calibration method
chosen by measurement, sensitive layers kept in float until the accuracy budget is met)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest, Session, artifact_manifest
from edgekd.backends.calibration import CalibrationBatches, check_method
from edgekd.backends.onnx_export import INPUT_NAME
from edgekd.errors import EdgekdError

MODEL_FILE = "model.onnx"
_GRAPH_LEVELS = ("disable", "basic", "extended", "all")


def _ort():
    try:
        import onnxruntime
    except ImportError as err:
        raise BackendUnavailable(f"onnxruntime is not installed ({err}); pip install onnxruntime") from err
    return onnxruntime


def collection_stride(num_batches: int, most: int = 4) -> int:
    """Largest divisor of ``num_batches`` up to ``most``: batches per ``collect_data`` call.

    ONNX Runtime's histogram calibrators (percentile, entropy) keep every intermediate tensor of
    every batch of one ``collect_data`` call in memory (lraspp_mobilenetv3_large at 480×360:
    ~220 MB per image, so 100 images went out of memory at 22 GB); collected in strides, the
    histograms are merged and memory stays at ``stride`` images. ORT needs the stride to divide
    the batch count.
    """
    return max(d for d in range(1, min(most, num_batches) + 1) if num_batches % d == 0)


def _reader(batches: CalibrationBatches):
    """A ``CalibrationDataReader`` over the batches with the ``__len__``/``set_range`` strided calibration uses."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.set_range(0, len(batches))

        def __len__(self) -> int:
            return len(batches)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.position, self.end = start_index, min(end_index, len(batches))

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.position >= self.end:
                return None
            self.position += 1
            return {INPUT_NAME: batches.batch(self.position - 1)}

    return Reader()


def quantize_qdq(src: Path, dst: Path, batches: CalibrationBatches, *, method: str, symmetric: bool = False) -> dict[str, Any]:
    """Static QDQ INT8 of ``src`` into ``dst``, calibrated on ``batches``; returns what was done.

    u8 activations / s8 per-channel weights suit x86 CPUs (VNNI); ``symmetric`` gives s8
    activations with zero points of 0, the form TensorRT's explicit quantisation needs. One
    configuration, no search: the same preparation and quantiser as the ONNX Runtime INT8 search
    (``ort_int8``), mixed-range concats kept in float.
    """
    _ort()
    from edgekd.backends.ort_int8 import prepare, quantize

    method = check_method("percentile" if method == "auto" else method)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        prepare(src, prepared)
        mixed = quantize(prepared, dst, method=method, cache=Path(tmp) / "ranges.cache", batches=batches, exclude=[], symmetric=symmetric)
    return {
        "method": method, "format": "QDQ", "per_channel": True, "num_images": batches.num_images_used,
        "activations": "int8 symmetric" if symmetric else "uint8 asymmetric", "weights": "int8 symmetric per-channel",
        "collected_in_strides_of": collection_stride(len(batches)), "concat_in_float": mixed,
    }


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    doctor_checks = ("onnxruntime-session",)
    doctor_needs = "onnxruntime"
    dynamic_shape_cost = "ONNX Runtime cannot pre-plan memory for dynamic shapes (small cost on CPU)"
    runs_custom_onnx_domains = True
    precisions = ("fp32", "int8")
    pip_extra = "onnxruntime"
    needs_onnx = True
    runtime_options = {
        "threads": "intra-op threads (default: ONNX Runtime's choice, one per physical core)",
        "denormal_as_zero": "session option session.set_denormal_as_zero (flush subnormal floats)",
        "graph_optimization": f"graph optimisation level: {', '.join(_GRAPH_LEVELS)} (default all)",
        "providers": "execution providers in order (default ['CPUExecutionProvider']); never falls back silently",
    }
    export_options = {"calib_method": "auto (default: best of minmax, percentile, entropy on the validation images) | minmax | percentile | entropy",
                      "max_accuracy_drop": "INT8 accuracy gate: max mIoU drop in points vs FP32 (default 1% of FP32; 'off')",
                      "reduce_range": "7-bit INT8 weights: auto (default: on for an x86 CPU without VNNI, where 8-bit weights "
                                      "saturate ONNX Runtime's int16 pair sums) | on | off"}

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        opts = {} if runtime.threads is None else {"threads": runtime.threads}
        return {**opts, "denormal_as_zero": True} if runtime.denormals_as_zero else opts

    def is_available(self) -> tuple[bool, str]:
        try:
            _ort()
        except BackendUnavailable as err:
            return False, str(err)
        return True, ""

    def version(self) -> str:
        return _ort().__version__

    def export(self, request: ExportRequest) -> dict[str, Any]:
        assert request.onnx_path is not None, "the export pipeline provides the ONNX graph"
        dst = request.out_dir / MODEL_FILE
        if request.precision == "fp32":
            shutil.copyfile(request.onnx_path, dst)
            return {"runtime_file": MODEL_FILE, "precision_used": "fp32"}
        from edgekd.backends.ort_int8 import from_qat, search

        meta = request.metadata
        gate_data = dict(budget_option=request.options.get("max_accuracy_drop"), val_images=request.val_images, val_masks=request.val_masks,
                         num_classes=int(request.val_num_classes or meta["num_classes"]),
                         ignore_index=request.val_ignore_index if request.val_num_classes else meta.get("ignore_index"), log=request.log)
        if request.qat_onnx_path is not None:
            fields = from_qat(request.onnx_path, request.qat_onnx_path, dst, **gate_data)
        else:
            fields = search(request.onnx_path, dst, CalibrationBatches(request.calib_images, batch_size=1),
                            method=request.options.get("calib_method", "auto"), reduce_range=request.options.get("reduce_range"),
                            **gate_data)
        quant = fields["quantization"]
        floats = len(quant["float_layers"]) + len(quant["batchnorm_in_float"])
        return {
            "runtime_file": MODEL_FILE, **fields,
            "precision_used": f"int8 QDQ ({quant['activations']} activations, {quant['weights']} weights); "
                              f"fp32 for unquantised ops and {floats} nodes kept in float",
        }

    def embed_pre_post(self, request: ExportRequest, contract: Any) -> dict[str, Any]:
        """ONNX ops around the exported graph; the bilinear resize on the uint8 NHWC frame (ORT's fast kernel)."""
        from edgekd.backends.onnx_prepost import embed_onnx

        path = Path(request.out_dir) / MODEL_FILE
        return {"io_contract": embed_onnx(path, path, contract, resize_uint8=True)}

    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session:
        self.check_runtime_options(runtime_options)
        manifest = artifact_manifest(artifact_dir)
        precision = "int8 (QDQ)" if manifest.get("precision") == "int8" else manifest.get("precision", "fp32")
        return OrtSession(Path(artifact_dir) / MODEL_FILE, precision=precision, **runtime_options)


class OrtSession(Session):
    """One InferenceSession, sequential execution, outputs returned as float32 arrays."""

    def __init__(self, path: Path, *, threads: int | None = None, denormal_as_zero: bool = False,
                 graph_optimization: str = "all", providers: list[str] | None = None, precision: str = "fp32") -> None:
        ort = _ort()
        providers = list(providers or ["CPUExecutionProvider"])
        missing = [p for p in providers if p not in ort.get_available_providers()]
        if missing:
            raise BackendUnavailable(f"ONNX Runtime provider(s) {missing} not available here (have {ort.get_available_providers()})")
        if graph_optimization not in _GRAPH_LEVELS:
            raise BackendUnavailable(f"graph_optimization {graph_optimization!r} is not one of {', '.join(_GRAPH_LEVELS)}")
        so = ort.SessionOptions()
        so.intra_op_num_threads = int(threads or 0)
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        levels = ort.GraphOptimizationLevel
        so.graph_optimization_level = {"disable": levels.ORT_DISABLE_ALL, "basic": levels.ORT_ENABLE_BASIC,
                                       "extended": levels.ORT_ENABLE_EXTENDED, "all": levels.ORT_ENABLE_ALL}[graph_optimization]
        so.add_session_config_entry("session.set_denormal_as_zero", "1" if denormal_as_zero else "0")
        self._session = ort.InferenceSession(str(path), so, providers=providers)
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        self._threads, self._denormal, self._level = threads, denormal_as_zero, graph_optimization
        self._path, self._precision = path, precision

    def run(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([self._output], {self._input: x})[0]

    def bind(self, x: np.ndarray):
        """IOBinding: ``x``'s memory is bound as the input and a preallocated array as the output,
        once; each step is ``run_with_iobinding`` — no feed dict, no per-call output allocation
        (``session.run`` allocates and page-faults a fresh output array on every call)."""
        ort = _ort()
        if not x.flags.c_contiguous:
            raise EdgekdError("bind() needs a C-contiguous input array (np.ascontiguousarray)")
        out = np.empty_like(self.run(x))  # the output's shape and dtype, as the graph gives them
        binding = self._session.io_binding()
        binding.bind_ortvalue_input(self._input, ort.OrtValue.ortvalue_from_numpy(x))  # CPU: wraps x, no copy
        binding.bind_ortvalue_output(self._output, ort.OrtValue.ortvalue_from_numpy(out))
        run = self._session.run_with_iobinding
        self._bound = (x, out, binding)

        def step() -> np.ndarray:
            run(binding)
            return out

        return step

    def describe(self) -> dict[str, Any]:
        ort = _ort()
        return {
            "backend": "onnxruntime", "backend_version": ort.__version__, "providers": self._session.get_providers(),
            "precision": self._precision,
            "device": "CPU" if self._session.get_providers() == ["CPUExecutionProvider"] else self._session.get_providers()[0],
            "threads": self._threads or f"default ({os.cpu_count()} logical CPUs)", "denormal_as_zero": self._denormal,
            "graph_optimization": self._level, "model_file": self._path.name,
        }
