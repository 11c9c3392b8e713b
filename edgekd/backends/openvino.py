"""OpenVINO: IR from the shared ONNX graph; FP16 weight compression; INT8 by NNCF on real images.

The inference precision is decided when the IR is compiled, not when it is saved: on CPUs with
AMX/AVX512-BF16 OpenVINO runs bf16 by default even for an FP32 IR. ``describe()`` reads the
compiled model's ``INFERENCE_PRECISION_HINT`` back so the precision actually used is recorded.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest, Session, artifact_manifest
from edgekd.backends.calibration import CalibrationBatches
from edgekd.backends.onnx_export import converter_error
from edgekd.errors import EdgekdError

MODEL_FILE = "model.xml"
PRECISION_HINTS = ("f32", "bf16", "f16")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")


def _ov():
    try:
        import openvino
    except ImportError as err:
        raise BackendUnavailable(f"OpenVINO is not installed ({err}); pip install 'edgekd[openvino]'") from err
    return openvino


def _nncf():
    try:
        import nncf
    except ImportError as err:
        raise BackendUnavailable(f"NNCF (OpenVINO INT8) is not installed ({err}); pip install 'edgekd[openvino]'") from err
    return nncf


def _miou_validation(num_classes: int, ignore_index: int):
    """NNCF validation function: mIoU of a compiled model on (image, mask) pairs."""
    from edgekd.metrics import ConfusionMatrix

    def validate(compiled_model: Any, data: Any) -> float:
        confusion = ConfusionMatrix(num_classes, ignore_index)
        output = compiled_model.output(0)
        for image, mask in data:
            logits = compiled_model(image)[output]
            confusion.update(np.argmax(logits, axis=1), mask)
        return confusion.miou()

    return validate


RANKING_IMAGES = 25  # NNCF re-runs this subset once per quantiser group when ranking; all images would take hours on 2 cores


def quantize_int8(ov_model: Any, request: ExportRequest) -> tuple[Any, dict[str, Any]]:
    """NNCF INT8: accuracy-controlled on the labelled images when there are any (the default), else plain PTQ.

    With labelled images the budget (``max_accuracy_drop`` points, default 1% of FP32 mIoU) goes to
    ``nncf.quantize_with_accuracy_control``, which reverts the quantisers that cost the most to
    float until it holds; the result is then measured again here (INT8 vs FP32 IR, f32 hint) and
    an unmet budget raises AccuracyGateError. ``"off"`` gives plain ``nncf.quantize``.
    """
    from edgekd.backends.int8_budget import check_budget

    nncf = _nncf()
    batches = CalibrationBatches(request.calib_images, batch_size=1)
    calibration = nncf.Dataset(list(batches))
    info: dict[str, Any] = {"tool": f"nncf {nncf.__version__}", "num_images": batches.num_images_used,
                            "preset": "performance (symmetric)", "fast_bias_correction": True, "model_type": None}
    budget = check_budget(request.options.get("max_accuracy_drop"))
    labelled = request.val_images is not None and request.val_masks is not None
    if budget == "off" or not labelled:
        model = nncf.quantize(ov_model, calibration, subset_size=batches.num_images_used)
        return model, {**info, "method": "nncf.quantize (post-training, min-max statistics + bias correction)",
                       "float_layers": float_layers(model)}
    classes, ignore = _classes(request)
    validation = nncf.Dataset([(img[None], mask[None]) for img, mask in zip(request.val_images, request.val_masks)])
    drop, drop_type = (0.01, nncf.DropType.RELATIVE) if budget is None else (float(budget) / 100, nncf.DropType.ABSOLUTE)
    model = nncf.quantize_with_accuracy_control(
        ov_model, calibration, validation, _miou_validation(classes, ignore), max_drop=drop, drop_type=drop_type,
        subset_size=batches.num_images_used,
        advanced_accuracy_restorer_parameters=nncf.AdvancedAccuracyRestorerParameters(
            ranking_subset_size=min(RANKING_IMAGES, len(request.val_images)), num_ranking_workers=1),
    )
    return model, {**info, "method": "nncf.quantize_with_accuracy_control", "max_miou_drop": budget if budget is not None else "1% of FP32",
                   "validation_images": len(request.val_images), "ranking_images": min(RANKING_IMAGES, len(request.val_images)),
                   "float_layers": float_layers(model)}


def from_qat(request: ExportRequest) -> tuple[Any, dict[str, Any]]:
    """INT8 IR of a QAT checkpoint: its QDQ graph converted as trained (FakeQuantize ops), no calibration."""
    try:
        model = _ov().convert_model(str(request.qat_onnx_path))
    except Exception as err:
        raise converter_error("openvino.convert_model", err, "export the QAT checkpoint at fp32, or re-run the QAT fine-tune") from err
    return model, {"tool": "openvino.convert_model (QDQ ONNX of the QAT checkpoint)", "method": "qat", "num_images": 0,
                   "float_layers": float_layers(model)}


def _classes(request: ExportRequest) -> tuple[int, int | None]:
    meta = request.metadata
    if request.val_num_classes:
        return int(request.val_num_classes), request.val_ignore_index
    return int(meta["num_classes"]), int(meta.get("ignore_index", 255))


_WEIGHTED = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul")


def float_layers(model: Any) -> list[str]:
    """Weighted ops (convolutions, matmuls) of an NNCF model whose activation input is not fake-quantised."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() in _WEIGHTED:
            source = op.input_value(0).get_node()
            if source.get_type_name() != "FakeQuantize":
                names.append(op.get_friendly_name())
    return names


def gate(fp32_model: Any, int8_model: Any, request: ExportRequest, quant: dict[str, Any]) -> dict[str, Any]:
    """Measure INT8 vs FP32 (both compiled with the f32 hint) on the labelled images; raise if over budget."""
    from edgekd.backends.int8_budget import Trial, gate_failure, gate_record, miou_points, resolve_budget

    core = _ov().Core()
    classes, ignore = _classes(request)

    def score(model: Any) -> float:
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        out = compiled.output(0)
        return miou_points(lambda x: compiled(x)[out], request.val_images, request.val_masks, num_classes=classes, ignore_index=ignore)

    fp32 = score(fp32_model)
    budget = resolve_budget(request.options.get("max_accuracy_drop"), fp32)
    miou = score(int8_model)
    best = Trial(quant["method"], miou, fp32 - miou, quant["float_layers"])
    if request.log:
        request.log(f"openvino INT8 [{best.label}]: mIoU {miou:.2f} vs FP32 {fp32:.2f} (drop {best.drop:.2f}, budget {budget.points}); "
                    f"{len(best.float_layers)} layers in float")
    if not budget.met(best.drop):
        raise gate_failure("openvino", budget, best, 1)
    return gate_record(budget, best, [best], images=len(request.val_images), measured_as="OpenVINO INT8 vs FP32 IR, f32 inference hint")


class OpenVinoBackend(Backend):
    name = "openvino"
    doctor_checks = ("openvino-compile", "openvino-default-precision")
    doctor_needs = "openvino"
    dynamic_shape_cost = "the OpenVINO CPU plugin compiles dynamic shapes to generic kernels and re-plans memory per call"
    dynamic_spatial_warns = True
    runtime_precisions = ("bf16",)  # an fp32 artifact under INFERENCE_PRECISION_HINT bf16
    precisions = ("fp32", "fp16", "int8")
    pip_extra = "openvino"
    needs_onnx = True
    runtime_options = {
        "threads": "INFERENCE_NUM_THREADS (default: OpenVINO's choice)",
        "precision_hint": f"INFERENCE_PRECISION_HINT: {', '.join(PRECISION_HINTS)} (default: the device's, bf16 on AMX CPUs)",
        "performance_hint": f"PERFORMANCE_HINT: {', '.join(PERFORMANCE_HINTS)} (default LATENCY)",
        "num_streams": "NUM_STREAMS (default: set by the performance hint)",
        "denormals_optimization": "CPU_DENORMALS_OPTIMIZATION (flush subnormal floats)",
        "device": "OpenVINO device name (default CPU)",
    }
    export_options = {"max_accuracy_drop": "INT8 accuracy gate (nncf.quantize_with_accuracy_control): max mIoU drop in points "
                                           "(default 1% of FP32 when labelled images are given; 'off' = plain nncf.quantize)"}

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        opts: dict[str, Any] = {} if runtime.threads is None else {"threads": runtime.threads}
        if runtime.openvino_hint is not None:
            opts["performance_hint"] = runtime.openvino_hint.upper()
        if runtime.openvino_inference_precision is not None:
            opts["precision_hint"] = runtime.openvino_inference_precision
        if runtime.denormals_as_zero:
            opts["denormals_optimization"] = True
        return opts

    def is_available(self) -> tuple[bool, str]:
        try:
            _ov()
        except BackendUnavailable as err:
            return False, str(err)
        return True, ""

    def version(self) -> str:
        return _ov().get_version()

    def export(self, request: ExportRequest) -> dict[str, Any]:
        ov = _ov()
        assert request.onnx_path is not None, "the export pipeline provides the ONNX graph"
        try:
            ov_model = ov.convert_model(str(request.onnx_path))
        except Exception as err:
            raise converter_error("openvino.convert_model", err, "try --exporter torchscript, or replace that op") from err
        fields: dict[str, Any] = {"runtime_file": MODEL_FILE, "converter": "openvino.convert_model (from ONNX)"}
        if request.precision == "int8":
            fp32_model = ov_model.clone()
            try:
                ov_model, quant = quantize_int8(ov_model, request) if request.qat_onnx_path is None else from_qat(request)
            except EdgekdError:
                raise
            except Exception as err:
                raise converter_error("nncf", err, "try --max-accuracy-drop off, or more calibration images") from err
            if quant["method"] in ("nncf.quantize_with_accuracy_control", "qat") and request.val_images is not None:
                fields["accuracy_gate"] = gate(fp32_model, ov_model, request, quant)
            fields.update(quantization=quant, calibration={"method": quant["method"]},
                          precision_used=f"int8 (NNCF FakeQuantize), {len(quant['float_layers'])} weighted layers in float; "
                                         "other ops at the device's inference precision")
        else:
            fields["precision_used"] = ("fp16 weights (compressed), " if request.precision == "fp16" else "fp32 weights, ") + \
                "inference precision chosen at compile time"
        ov.save_model(ov_model, str(request.out_dir / MODEL_FILE), compress_to_fp16=request.precision == "fp16")
        return fields

    def embed_pre_post(self, request: ExportRequest, contract: Any) -> dict[str, Any]:
        """OpenVINO's PrePostProcessor for the input (u8 NHWC frame, colour conversion, linear resize,
        mean/scale), then TopK(k=1) + Convert(u8) [+ nearest Interpolate] appended for the class map."""
        from edgekd.backends.openvino_prepost import embed_openvino

        import os

        path = Path(request.out_dir) / MODEL_FILE
        staged = path.with_name("fused.xml")
        model, io_contract = embed_openvino(_ov().Core().read_model(str(path)), contract)
        _ov().save_model(model, str(staged), compress_to_fp16=request.precision == "fp16")
        del model  # the plain weights may be memory-mapped: release them before replacing the files
        for suffix in (".bin", ".xml"):
            os.replace(staged.with_suffix(suffix), path.with_suffix(suffix))
        return {"io_contract": io_contract}

    def parity_runs(self, precision: str) -> dict[str, dict[str, Any]]:
        """f32 inference isolates what export did (compression, quantisation); the device default
        (bf16 on AMX CPUs) is what an app gets without a hint, so both are measured."""
        return {"f32 hint": {"precision_hint": "f32"}, "device default": {}}

    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session:
        self.check_runtime_options(runtime_options)
        stored = artifact_manifest(artifact_dir).get("precision", "fp32")
        return OpenVinoSession(Path(artifact_dir) / MODEL_FILE, stored_precision=stored, **runtime_options)


class OpenVinoSession(Session):
    """A compiled model and one reused infer request (what a latency-bound app keeps)."""

    def __init__(self, path: Path, *, stored_precision: str = "fp32", threads: int | None = None,
                 precision_hint: str | None = None, performance_hint: str = "LATENCY", num_streams: int | None = None,
                 denormals_optimization: bool | None = None, device: str = "CPU") -> None:
        ov = _ov()
        if precision_hint is not None and precision_hint not in PRECISION_HINTS:
            raise EdgekdError(f"OpenVINO precision_hint {precision_hint!r} is not one of {', '.join(PRECISION_HINTS)} (or leave it unset)")
        if performance_hint not in PERFORMANCE_HINTS:
            raise EdgekdError(f"OpenVINO performance_hint {performance_hint!r} is not one of {', '.join(PERFORMANCE_HINTS)}")
        config: dict[str, Any] = {"PERFORMANCE_HINT": performance_hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        if precision_hint:
            config["INFERENCE_PRECISION_HINT"] = precision_hint
        if num_streams:
            config["NUM_STREAMS"] = int(num_streams)
        if denormals_optimization is not None and device == "CPU":
            config["CPU_DENORMALS_OPTIMIZATION"] = bool(denormals_optimization)
        self.core = ov.Core()
        self.compiled = self.core.compile_model(self.core.read_model(str(path)), device, config)
        self._request = self.compiled.create_infer_request()
        self._config, self._device, self._stored = config, device, stored_precision

    def run(self, x: np.ndarray) -> np.ndarray:
        # infer() copies the outputs into fresh arrays already (share_outputs=False): no second copy
        return self._request.infer({0: x}, share_inputs=True)[0]

    def bind(self, x: np.ndarray):
        """``x`` becomes the request's input tensor (shared memory, set once); each step is one
        ``start_async`` + ``wait`` on the reused request, and returns a view of its output tensor —
        what ``benchmark_app`` times (``inference_only``), with no input copy and no output copy."""
        if not (x.flags.c_contiguous and x.dtype == self.compiled.input(0).get_element_type().to_dtype()):
            raise EdgekdError(f"bind() needs a C-contiguous {self.compiled.input(0).get_element_type().to_dtype()} array, "
                              f"got {x.dtype} (contiguous={x.flags.c_contiguous})")
        request = self._request
        request.set_input_tensor(0, _ov().Tensor(x, shared_memory=True))
        self._bound = x  # the tensor shares x's memory: keep x alive with the session
        output = request.get_output_tensor

        def step() -> np.ndarray:
            request.start_async()
            request.wait()
            return output(0).data

        return step

    def run_async_throughput(self, x: np.ndarray, seconds: float) -> dict[str, Any]:
        """Pipelined frames per second: an ``AsyncInferQueue`` kept full for ``seconds``.

        Uses the compiled model's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``; with the default LATENCY
        hint that is one stream, so load with ``performance_hint="THROUGHPUT"`` to let requests
        overlap. Reported apart from the synchronous latency, which is the AR figure.
        """
        ov = _ov()
        jobs = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        queue = ov.AsyncInferQueue(self.compiled, jobs)
        done = [0]
        queue.set_callback(lambda request, userdata: done.__setitem__(0, done[0] + 1))
        start = time.perf_counter_ns()
        deadline = start + int(seconds * 1e9)
        while time.perf_counter_ns() < deadline:
            queue.start_async({0: x})  # blocks while every request is busy
        queue.wait_all()
        elapsed = (time.perf_counter_ns() - start) / 1e9
        return {"fps": done[0] * x.shape[0] / elapsed, "frames": done[0] * x.shape[0], "seconds": elapsed,
                "infer_requests": jobs, "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
                "num_streams": int(self.compiled.get_property("NUM_STREAMS"))}

    def _runtime_precisions(self) -> list[str]:
        ops = self.compiled.get_runtime_model().get_ops()
        found = {op.get_rt_info()["runtimePrecision"].astype(str) for op in ops if "runtimePrecision" in op.get_rt_info()}
        return sorted(found)

    def describe(self) -> dict[str, Any]:
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # "f32", "bf16", "f16"
        runtime = self._runtime_precisions()
        quantised = any(p in ("i8", "u8") for p in runtime)
        return {
            "backend": "openvino", "backend_version": _ov().get_version(), "device": self._device,
            "device_name": self.core.get_property(self._device, "FULL_DEVICE_NAME"),
            "execution_devices": list(self.compiled.get_property("EXECUTION_DEVICES")),
            "precision": f"int8+{hint}" if quantised else hint, "inference_precision_hint": hint,
            "runtime_precisions": runtime, "stored_precision": self._stored,
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
            "performance_hint": str(self.compiled.get_property("PERFORMANCE_HINT")),
            "num_streams": int(self.compiled.get_property("NUM_STREAMS")), "requested_config": dict(self._config),
            "cpu_pinning": self._cpu_pinning(),
        }

    def _cpu_pinning(self) -> bool | None:
        """ENABLE_CPU_PINNING (formerly CPU_BIND_THREAD) as compiled; None off the CPU plugin."""
        try:
            return bool(self.compiled.get_property("ENABLE_CPU_PINNING"))
        except RuntimeError:
            return None
