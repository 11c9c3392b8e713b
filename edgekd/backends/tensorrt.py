"""TensorRT: export writes ONNX + a build recipe; the target builds and caches the engine.

Engines are tied to one GPU model and one TensorRT version, so nothing is built at export
time unless asked: ``build_engine_from_recipe`` runs on the device (the bench worker calls it
through ``load``), parses the ONNX with ``trt.OnnxParser``, sets the workspace pool, FP16/INT8
flags, an optimisation profile, the INT8 source (an ``IInt8EntropyCalibrator2`` fed from the
stored calibration pixels, or a QDQ ONNX), the timing cache and DLA placement, then caches the
serialized engine under GPU name + TensorRT version. Buffers live in torch CUDA tensors.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest, Session
from edgekd.backends.calibration import CalibrationBatches
from edgekd.backends.onnx_export import ConverterError
from edgekd.backends.tensorrt_recipe import (
    CALIB_CACHE_FILE, CALIB_DATA_FILE, INT8_SOURCES, RECIPE_FILE, CalibratorFeed, calibrator_feed,
    engine_cache_dir, engine_cache_path, for_target, make_recipe, read_recipe, validate_recipe,
)
from edgekd.errors import EdgekdError

MODEL_FILE = "model.onnx"
DEFAULT_CACHE = Path(os.environ.get("EDGEKD_CACHE", Path.home() / ".cache" / "edgekd")) / "tensorrt"


def _trt():
    try:
        import tensorrt
    except ImportError as err:
        raise BackendUnavailable(
            f"TensorRT is not importable ({err}); on Jetson use JetPack's system Python, on an x86 CUDA host "
            "pip install 'edgekd[tensorrt]' (from NVIDIA's index)") from err
    return tensorrt


def _cuda_torch():
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailable("TensorRT needs an NVIDIA GPU with CUDA; torch.cuda.is_available() is False here")
    return torch


def make_entropy_calibrator(trt: Any, feed: CalibratorFeed) -> Any:
    """An ``IInt8EntropyCalibrator2`` whose batches come from ``feed`` (copied into one CUDA buffer)."""
    torch = _cuda_torch()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.device_input = torch.empty(feed.batches.batch_shape, dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return feed.get_batch_size()

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = feed.next_host_batch()
            if batch is None:
                return None
            self.device_input.copy_(torch.from_numpy(batch))
            torch.cuda.synchronize()
            return [int(self.device_input.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return feed.read_cache()

        def write_calibration_cache(self, cache: Any) -> None:
            feed.write_cache(cache)

    return EntropyCalibrator()


def _parse_onnx(trt: Any, builder: Any, logger: Any, onnx_path: Path) -> Any:
    """Network from the ONNX file; a parser failure names the node and op it stopped at."""
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        first = errors[0] if errors else None
        node = getattr(first, "node_name", lambda: "")() or f"node #{first.node()}" if first else "unknown node"
        op = getattr(first, "node_operator", lambda: "")() if first else ""
        desc = first.desc() if first else "no error recorded"
        raise ConverterError(f"TensorRT OnnxParser rejected the model at {node} ({op or 'op unknown'}): {desc} — "
                             "re-export with --exporter torchscript or replace that op")
    return network, parser


def _configure(trt: Any, builder: Any, network: Any, recipe: dict[str, Any], artifact_dir: Path, cache: Path) -> Any:
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(recipe["workspace_mb"]) << 20)
    config.builder_optimization_level = int(recipe["builder_optimization_level"])
    for spec in recipe["profiles"]:
        profile = builder.create_optimization_profile()
        for name, shapes in spec.items():
            profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
        config.add_optimization_profile(profile)
    if recipe["precision"] in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 engines keep fp16 for layers without int8 kernels
    if recipe["precision"] == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if recipe["int8"]["source"] == "calibrator":
            if not hasattr(config, "int8_calibrator"):
                raise EdgekdError(f"TensorRT {trt.__version__} dropped implicit INT8 calibration; re-export with --trt-int8 qdq")
            config.int8_calibrator = make_entropy_calibrator(trt, calibrator_feed(artifact_dir, recipe, cache / CALIB_CACHE_FILE))
            config.set_calibration_profile(profile)
    if recipe.get("dla_core") is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(recipe["dla_core"])
        if recipe.get("gpu_fallback", True):
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    return config


def build_engine_from_recipe(artifact_dir: Path, cache_dir: Path = DEFAULT_CACHE, recipe: dict[str, Any] | None = None) -> Path:
    """Build (or reuse) the engine for this artifact on this GPU; returns the cached engine path.

    ``recipe`` defaults to the artifact's own; pass ``for_target(...)``'s to apply a device's settings.
    """
    trt, torch = _trt(), _cuda_torch()
    artifact_dir = Path(artifact_dir)
    recipe = recipe or read_recipe(artifact_dir)
    gpu = torch.cuda.get_device_name()
    engine_path = engine_cache_path(cache_dir, gpu, trt.__version__, recipe)
    if engine_path.is_file():
        return engine_path
    cache = engine_cache_dir(cache_dir, gpu, trt.__version__)
    cache.mkdir(parents=True, exist_ok=True)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network, _parser = _parse_onnx(trt, builder, logger, artifact_dir / recipe["onnx"])
    config = _configure(trt, builder, network, recipe, artifact_dir, cache)
    timing_path = cache / recipe["timing_cache"]
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)
    start = time.perf_counter_ns()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EdgekdError(f"TensorRT could not build an engine for {artifact_dir} on {gpu} (see the TensorRT log above); "
                          "try a larger --trt-workspace-mb or another precision")
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    tmp = engine_path.with_suffix(".tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, engine_path)
    engine_path.with_suffix(".json").write_text(json.dumps({
        "artifact": str(artifact_dir), "gpu": gpu, "tensorrt": trt.__version__, "recipe": recipe,
        "build_seconds": (time.perf_counter_ns() - start) / 1e9}, indent=2))
    return engine_path


class TensorRTBackend(Backend):
    name = "tensorrt"
    doctor_checks = ("tensorrt-ops",)
    dynamic_shape_cost = ("TensorRT builds the engine for an optimisation profile (min/opt/max) and tunes kernels for the opt "
                          "shape only; every other shape runs slower kernels")
    dynamic_spatial_warns = True
    precisions = ("fp32", "fp16", "int8")
    pip_extra = "tensorrt"
    needs_onnx = True
    runtime_options = {"cache_dir": f"engine cache folder (default {DEFAULT_CACHE})",
                       "workspace_mb": "builder workspace for the engine built here (default: the recipe's)",
                       "dla_core": "DLA core for the engine built here (default: the recipe's)"}
    export_options = {
        "trt_workspace_mb": "builder workspace pool limit in MiB (default 1024)",
        "trt_dla_core": "DLA core index on Jetson (fp16/int8 only; GPU fallback on)",
        "trt_int8": f"INT8 source: {', '.join(INT8_SOURCES)} (default calibrator: IInt8EntropyCalibrator2)",
        "trt_max_batch": "max batch of the optimisation profile with --dynamic-batch (default 8)",
    }
    export_option_types = {"trt_workspace_mb": int, "trt_dla_core": int, "trt_max_batch": int}
    export_group = "TensorRT (engine built on the target from recipe.json)"

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        # workspace and DLA core go to load(), which builds the engine on the target with them
        # in place of the export-time recipe's
        return {k: v for k, v in (("workspace_mb", runtime.tensorrt_workspace_mb), ("dla_core", runtime.tensorrt_dla_core))
                if v is not None}

    def is_available(self) -> tuple[bool, str]:
        try:
            _trt()
            _cuda_torch()
        except BackendUnavailable as err:
            return False, str(err)
        return True, ""

    def version(self) -> str:
        try:
            return _trt().__version__
        except BackendUnavailable:
            return "not installed (engine built on the target)"

    def export(self, request: ExportRequest) -> dict[str, Any]:
        """ONNX + recipe (+ calibration pixels or a QDQ ONNX for INT8); no engine: it is built on the target."""
        from edgekd.backends.onnxruntime import quantize_qdq
        from edgekd.checkpoint import sha256_file

        assert request.onnx_path is not None, "the export pipeline provides the ONNX graph"
        out, int8 = request.out_dir / MODEL_FILE, None
        source = request.options.get("trt_int8", "calibrator")
        if request.precision == "int8" and source not in INT8_SOURCES:
            raise EdgekdError(f"--trt-int8 {source!r} is not one of {', '.join(INT8_SOURCES)}")
        if request.precision == "int8" and source == "qdq":
            quant = quantize_qdq(request.onnx_path, out, CalibrationBatches(request.calib_images, 1),
                                 method=request.options.get("calib_method", "percentile"), symmetric=True)
            int8 = {"source": "qdq", "num_images": quant["num_images"]}
        else:
            shutil.copyfile(request.onnx_path, out)
        if request.precision == "int8" and source == "calibrator":
            np.save(request.out_dir / CALIB_DATA_FILE, request.calib_pixels, allow_pickle=False)
            int8 = {"source": "calibrator", "calibrator": "IInt8EntropyCalibrator2", "data": CALIB_DATA_FILE,
                    "data_format": "uint8 RGB N×3×H×W in 0..255; normalise with 'normalization'", "batch_size": 1,
                    "num_images": int(len(request.calib_pixels)), "cache": CALIB_CACHE_FILE,
                    "normalization": request.metadata["normalization"]}
        recipe = make_recipe(precision=request.precision, onnx_file=MODEL_FILE, onnx_sha256=sha256_file(out),
                             input_size=request.input_size, dynamic_batch=request.dynamic_batch,
                             options=request.options, int8=int8)
        (request.out_dir / RECIPE_FILE).write_text(json.dumps(recipe, indent=2))
        return {"runtime_file": RECIPE_FILE, "tensorrt_recipe": recipe,
                "calibration": {"method": "entropy2 (TensorRT, on target)" if source == "calibrator" else f"{request.options.get('calib_method', 'percentile')} (ONNX Runtime QDQ, symmetric)"}
                if request.precision == "int8" else None,
                "precision_used": f"{request.precision} requested; TensorRT picks per-layer kernels when the engine is built on the target"}

    def embed_pre_post(self, request: ExportRequest, contract: Any) -> dict[str, Any]:
        """ArgMax (and the pre-processing) as ONNX ops in the recipe's ONNX, the resize on floats (TensorRT's
        resize layer takes no uint8); the recipe then names the ``frame`` input and ``classes`` output. Code
        path only here: engines are built and run on the NVIDIA target."""
        from edgekd.backends.onnx_prepost import CLASS_OUTPUT, FRAME_INPUT, embed_onnx
        from edgekd.checkpoint import sha256_file

        if request.precision == "int8" and request.options.get("trt_int8", "calibrator") == "calibrator":
            raise EdgekdError("--embed-pre-post with TensorRT INT8 needs --trt-int8 qdq (the calibrator feeds normalised "
                              "float images, a fused engine takes uint8 frames)")
        out = request.out_dir / MODEL_FILE
        io_contract = embed_onnx(out, out, contract, resize_uint8=False)
        recipe_path = request.out_dir / RECIPE_FILE
        recipe = json.loads(recipe_path.read_text())
        frame = [1, *contract.camera_hw, 3]
        recipe.update(onnx_sha256=sha256_file(out), input_name=FRAME_INPUT, output_name=CLASS_OUTPUT,
                      profiles=[{FRAME_INPUT: {"min": frame, "opt": frame, "max": frame}}])
        recipe_path.write_text(json.dumps(validate_recipe(recipe, request.out_dir), indent=2))
        return {"io_contract": io_contract, "tensorrt_recipe": recipe}

    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session:
        self.check_runtime_options(runtime_options)
        _trt(), _cuda_torch()  # a missing runtime or GPU is the first thing to report
        cache_dir = Path(runtime_options.get("cache_dir", DEFAULT_CACHE))
        recipe = for_target(read_recipe(Path(artifact_dir)), workspace_mb=runtime_options.get("workspace_mb"),
                            dla_core=runtime_options.get("dla_core"))
        engine = build_engine_from_recipe(Path(artifact_dir), cache_dir, recipe)
        return TensorRTSession(engine, recipe)


class TensorRTSession(Session):
    """One execution context; input/output in torch CUDA tensors; ``run`` syncs its stream."""

    def __init__(self, engine_path: Path, recipe: dict[str, Any]) -> None:
        trt, torch = _trt(), _cuda_torch()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise EdgekdError(f"TensorRT could not deserialize {engine_path}; delete it to rebuild")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT)
        self.stream = torch.cuda.Stream()
        self.recipe, self.engine_path, self._torch, self._trt = recipe, engine_path, torch, trt

    def run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.cuda.stream(self.stream):
            fused = self.engine.get_tensor_dtype(self.input) == self._trt.uint8  # --embed-pre-post: uint8 frame in
            device_in = torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8 if fused else np.float32)).to("cuda", non_blocking=True)
            self.context.set_input_shape(self.input, tuple(device_in.shape))
            device_out = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=torch.uint8 if fused else torch.float32,
                                     device="cuda")
            self.context.set_tensor_address(self.input, int(device_in.data_ptr()))
            self.context.set_tensor_address(self.output, int(device_out.data_ptr()))
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise EdgekdError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        self.stream.synchronize()
        return device_out.cpu().numpy()

    def bind(self, x: np.ndarray):
        """What a TensorRT app does per frame, the buffers made once: the host input (pinned, the
        array the pre-processing fills is copied into it) goes H2D, ``execute_async_v3`` runs on
        tensor addresses set once, the output comes D2H into a pinned host array, then the stream
        syncs. trtexec's "Latency" covers the same H2D + compute + D2H; its "GPU Compute Time" omits
        the copies. The step also copies ``x`` (pageable) into the pinned input, so that frames
        the pre-processing writes into ``x`` reach the GPU: ~0.2 ms for a 360×480 float frame, which
        an app that pre-processes straight into pinned memory saves (trtexec's input is pinned)."""
        torch, trt = self._torch, self._trt
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
                  trt.int64: torch.int64, trt.uint8: torch.uint8, trt.int8: torch.int8}
        host_in = torch.from_numpy(np.ascontiguousarray(x)).pin_memory()
        self.context.set_input_shape(self.input, tuple(host_in.shape))
        device_in = torch.empty_like(host_in, device="cuda")
        out_dtype = dtypes[self.engine.get_tensor_dtype(self.output)]
        out_shape = tuple(self.context.get_tensor_shape(self.output))
        device_out = torch.empty(out_shape, dtype=out_dtype, device="cuda")
        host_out = torch.empty(out_shape, dtype=out_dtype).pin_memory()
        self.context.set_tensor_address(self.input, int(device_in.data_ptr()))
        self.context.set_tensor_address(self.output, int(device_out.data_ptr()))
        stream, context, view = self.stream, self.context, host_out.numpy()
        self._bound = (x, host_in, device_in, device_out, host_out)

        def step() -> np.ndarray:
            host_in.numpy()[...] = x  # the frame buffer the app's pre-processing filled (pageable → pinned)
            with torch.cuda.stream(stream):
                device_in.copy_(host_in, non_blocking=True)
                if not context.execute_async_v3(stream.cuda_stream):
                    raise EdgekdError("TensorRT execute_async_v3 failed (see the TensorRT log)")
                host_out.copy_(device_out, non_blocking=True)
            stream.synchronize()
            return view

        return step

    def sync(self) -> None:
        self.stream.synchronize()

    def describe(self) -> dict[str, Any]:
        return {"backend": "tensorrt", "backend_version": self._trt.__version__, "device": self._torch.cuda.get_device_name(),
                "precision": self.recipe["precision"], "int8_source": (self.recipe.get("int8") or {}).get("source"),
                "dla_core": self.recipe.get("dla_core"), "engine": str(self.engine_path)}
