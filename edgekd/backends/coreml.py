"""Core ML: an ML Program (iOS 16+) converted from ``torch.export``, FP16 or FP32 compute.

``torch.jit.trace`` → coremltools 9.0 fails with torch 2.13 (docs/export.md, Core ML), ``torch.export`` works.
Optionally the normalisation is baked into the graph so the app feeds camera pixels (an RGB
image input) directly; optionally weights are 8-bit linear quantised or palettised. Packages
load on Linux for a spec check; predictions need macOS, so parity runs only there.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest, Session, artifact_manifest
from edgekd.backends.onnx_export import converter_error
from edgekd.errors import EdgekdError

MODEL_FILE = "model.mlpackage"
COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
WEIGHT_MODES = ("none", "linear8", "palettize4", "palettize6", "palettize8")
TARGETS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")
MACOS_ONLY = "Core ML prediction needs macOS"

# What coremltools and torch.export say on every conversion although it succeeded, with why each is
# harmless here. These go into the manifest (coreml.converter_messages), not to the terminal;
# anything else they say is passed through to stderr.
_HARMLESS_LOG = (
    (r"scikit-learn version .* is not supported", "edgekd converts from PyTorch, not scikit-learn"),
    (r"Torch version .* has not been tested with coremltools", "the spec check (and parity on macOS) checks the result"),
)
_HARMLESS_OFF_MAC = (r"Failed to load _ML\w*Proxy: No module named 'coremltools\.libcoremlpython'",
                     "the native Core ML runtime exists only on macOS; export and the spec check do not use it")
_HARMLESS_WARNINGS = (DeprecationWarning, FutureWarning, ResourceWarning)  # library internals (coremltools, torch, tempfile)
_PROGRESS = re.compile(r"^(Converting PyTorch Frontend ==> MIL Ops|Running MIL \w+ pipeline):")  # coremltools' tqdm bars
_IMPORT_MESSAGES: list[str] = []  # what the one import of coremltools in this process said (import-time warnings)


def _harmless_log(message: str) -> bool:
    patterns = [p for p, _ in _HARMLESS_LOG] + ([] if sys.platform == "darwin" else [_HARMLESS_OFF_MAC[0]])
    return any(re.search(p, message) for p in patterns)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def converter_messages(kept: list[str]):
    """Scope in which coremltools' known-harmless output is collected into ``kept`` instead of printed.

    At their sources: the ``coremltools`` logger (WARNING and up; records stop propagating to the
    root logger here), ``warnings`` of the categories above, and the tqdm progress bars the
    converter writes to stderr. A log record, warning or stderr line not known to be harmless is
    printed to stderr as before: a message that signals a real problem is never swallowed. When the
    scope fails, the harmless ones are printed too (an untested torch version may be why).
    Nothing outside the scope (other loggers, other backends) is touched.
    """
    logger = logging.getLogger("coremltools")
    handler, propagate, stderr = _Collect(), logger.propagate, io.StringIO()
    logger.addHandler(handler)
    logger.propagate = False
    failed = False
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
            warnings.simplefilter("always")
            try:
                yield
            except BaseException:
                failed = True
                raise
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        _sort_messages(handler.records, caught, stderr.getvalue(), kept, print_all=failed)


def _sort_messages(records: list[logging.LogRecord], caught: list, stderr: str, kept: list[str], print_all: bool) -> None:
    for record in records:
        text = f"{record.name} {record.levelname}: {record.getMessage()}"
        if _harmless_log(record.getMessage()) and not print_all:
            kept.append(text)
        else:
            print(text, file=sys.stderr)
    for w in caught:
        text = f"{w.category.__name__}: {w.message} ({Path(w.filename).name}:{w.lineno})"
        if issubclass(w.category, _HARMLESS_WARNINGS) and not print_all:
            kept.append(text)
        else:
            print(f"warning: {text}", file=sys.stderr)
    for line in re.split(r"[\r\n]+", stderr):
        if line.strip() and not _PROGRESS.match(line):
            print(line, file=sys.stderr)


def _counted(messages: list[str]) -> list[str]:
    """Each distinct message once, in first-seen order, with ``(×N)`` when it came N > 1 times."""
    counts: dict[str, int] = {}
    for m in messages:
        counts[m] = counts.get(m, 0) + 1
    return [m if n == 1 else f"{m} (×{n})" for m, n in counts.items()]


def _ct():
    try:
        if sys.modules.get("coremltools") is not None:  # already imported: its import messages were collected then
            return sys.modules["coremltools"]
        with converter_messages(_IMPORT_MESSAGES):
            import coremltools
    except ImportError as err:
        raise BackendUnavailable(f"coremltools is not installed ({err}); pip install 'edgekd[coreml]'") from err
    return coremltools


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        from edgekd.backends.registry import nearest

        raise EdgekdError(f"Core ML {what} {value!r}{nearest(value, list(allowed))} is not one of {', '.join(allowed)}")
    return value


def _frame_module(model: Any, contract: Any) -> Any:
    """Wrap ``model`` for a fused Core ML graph: camera pixels (0..255, NCHW, the contract's channel
    order) -> bilinear resize -> normalise -> model -> argmax [-> nearest to the camera size], int32."""
    import torch
    import torch.nn.functional as F

    class FrameToClasses(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model.eval()
            self.register_buffer("mean", torch.tensor(contract.mean, dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("inv_std", 1.0 / torch.tensor(contract.std, dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = pixels.flip(1) if contract.swap_channels else pixels
            if tuple(contract.camera_hw) != tuple(contract.network_hw):
                x = F.interpolate(x, size=tuple(contract.network_hw), mode="bilinear", align_corners=False)
            classes = self.model((x - self.mean) * self.inv_std).argmax(1, keepdim=True).float()
            if contract.class_map_at == "camera":
                classes = F.interpolate(classes, size=tuple(contract.camera_hw), mode="nearest")
            return classes[:, 0].to(torch.int32)

    return FrameToClasses().eval()


def _pixels_module(model: Any, normalization: dict[str, Any]) -> Any:
    """Wrap ``model`` so it takes RGB pixels in 0..255 and applies the normalisation in-graph."""
    import torch

    class PixelInput(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.flip = normalization.get("channel_order", "RGB") == "BGR"
            self.register_buffer("mean", torch.tensor(normalization["mean"], dtype=torch.float32).view(1, 3, 1, 1))
            self.register_buffer("inv_std", 1.0 / torch.tensor(normalization["std"], dtype=torch.float32).view(1, 3, 1, 1))

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            x = pixels.flip(1) if self.flip else pixels
            return self.model((x - self.mean) * self.inv_std)

    return PixelInput().eval()


def _compress(ml: Any, mode: str) -> Any:
    """8-bit linear weight quantisation or k-means palettisation (coremltools.optimize.coreml)."""
    import coremltools.optimize.coreml as cto

    if mode == "linear8":
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric"))
        return cto.linear_quantize_weights(ml, config=config)
    config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=int(mode.removeprefix("palettize"))))
    return cto.palettize_weights(ml, config=config)


def spec_check(path: Path) -> dict[str, Any]:
    """Open the .mlpackage without compiling it (works on Linux) and describe its spec."""
    ct = _ct()
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    ops = sum(len(block.operations) for fn in spec.mlProgram.functions.values() for block in fn.block_specializations.values())
    return {
        "loaded_with": f"coremltools {ct.__version__} MLModel(skip_model_load=True)", "specification_version": spec.specificationVersion,
        "model_type": spec.WhichOneof("Type"), "operations": ops,
        "inputs": [{"name": i.name, "type": i.type.WhichOneof("Type")} for i in spec.description.input],
        "outputs": [{"name": o.name, "type": o.type.WhichOneof("Type")} for o in spec.description.output],
    }


class CoreMLBackend(Backend):
    name = "coreml"
    doctor_checks = ("coreml-ops",)
    dynamic_shape_cost = ("with range-flexible shapes Core ML runs on the Neural Engine only at the default shape; other shapes "
                          "run on the GPU or CPU (Apple, developer.apple.com/forums/thread/724930)")
    dynamic_spatial_warns = True
    precisions = ("fp32", "fp16")
    pip_extra = "coreml"
    runtime_options = {"compute_units": f"{', '.join(COMPUTE_UNITS)} (default: the one recorded at export)"}
    export_options = {
        "coreml_bake_normalization": "input is an RGB image (0..255 pixels); normalisation runs in the model",
        "coreml_compute_units": f"{', '.join(COMPUTE_UNITS)} (default ALL)",
        "coreml_weights": f"{', '.join(WEIGHT_MODES)} (default none)",
        "coreml_target": f"minimum deployment target: {', '.join(TARGETS)} (default iOS16)",
    }
    export_option_types = {"coreml_bake_normalization": bool}
    export_group = "Core ML"

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        return {} if runtime.coreml_compute_units is None else {"compute_units": runtime.coreml_compute_units}

    def is_available(self) -> tuple[bool, str]:
        try:
            _ct()
        except BackendUnavailable as err:
            return False, str(err)
        return (True, "") if sys.platform == "darwin" else (False, f"{MACOS_ONLY} (this is {sys.platform}); export and spec checks work here")

    def version(self) -> str:
        return _ct().__version__

    def export(self, request: ExportRequest) -> dict[str, Any]:
        ct = _ct()
        options = request.options
        units = _choice(options.get("coreml_compute_units", "ALL"), COMPUTE_UNITS, "compute units")
        weights = _choice(options.get("coreml_weights", "none"), WEIGHT_MODES, "weight compression")
        target = _choice(options.get("coreml_target", "iOS16"), TARGETS, "deployment target")
        bake = bool(options.get("coreml_bake_normalization", False))
        if request.dynamic_batch:
            raise EdgekdError("Core ML export uses a fixed batch of 1 (one camera frame); drop --dynamic-batch for coreml")
        messages: list[str] = []
        with converter_messages(messages):
            ml = self._convert(ct, request, bake, units, target)
            if weights != "none":
                ml = _compress(ml, weights)
        normalization = request.metadata["normalization"]
        ml.short_description = f"edgekd {request.metadata.get('arch', '')} segmentation: logits N×C×H×W"
        ml.user_defined_metadata.update({
            "edgekd.class_names": json.dumps(request.metadata.get("class_names", [])),
            "edgekd.normalization": json.dumps(normalization), "edgekd.normalization_baked": str(bake),
        })
        ml.save(str(request.out_dir / MODEL_FILE))
        return {
            "runtime_file": MODEL_FILE, "converter": f"coremltools {ct.__version__} ct.convert(torch.export ExportedProgram)",
            "precision_used": f"{request.precision} compute" + ("" if weights == "none" else f", {weights} weights"),
            "coreml": {"compute_units": units, "minimum_deployment_target": target, "weights": weights,
                       "normalization_baked": bake, "input_name": "image" if bake else "input",
                       "spec_check": spec_check(request.out_dir / MODEL_FILE),
                       "converter_messages": _counted(_IMPORT_MESSAGES + messages)},
        }

    def _convert(self, ct: Any, request: ExportRequest, bake: bool, units: str, target: str) -> Any:
        import torch

        h, w = request.input_size
        module = _pixels_module(request.model, request.metadata["normalization"]) if bake else request.model.eval()
        inputs = [ct.ImageType(name="image", shape=(1, 3, h, w), color_layout=ct.colorlayout.RGB)] if bake \
            else [ct.TensorType(name="input", shape=(1, 3, h, w))]
        try:
            program = torch.export.export(module, (torch.zeros(1, 3, h, w),)).run_decompositions({})
            return ct.convert(
                program, inputs=inputs, outputs=[ct.TensorType(name="logits")], convert_to="mlprogram",
                compute_precision=ct.precision.FLOAT16 if request.precision == "fp16" else ct.precision.FLOAT32,
                minimum_deployment_target=getattr(ct.target, target), compute_units=getattr(ct.ComputeUnit, units),
            )
        except Exception as err:
            raise converter_error("coremltools.convert", err, "replace that op, or export another backend") from err

    def embed_pre_post(self, request: ExportRequest, contract: Any) -> dict[str, Any]:
        """Re-convert with an image input at the camera size (``color_layout`` = the contract's channel
        order: the graph sees the channels in that order) and resize, normalisation and argmax in the
        graph. Core ML programs output no uint8 tensors, so the class map is int32. Conversion and the
        spec check run here; predictions need macOS."""
        import shutil

        import torch

        ct = _ct()
        options = request.options
        units = _choice(options.get("coreml_compute_units", "ALL"), COMPUTE_UNITS, "compute units")
        target = _choice(options.get("coreml_target", "iOS16"), TARGETS, "deployment target")
        ch, cw = contract.camera_hw
        layout = ct.colorlayout.BGR if contract.channel_order == "BGR" else ct.colorlayout.RGB
        module = _frame_module(request.model, contract)
        messages: list[str] = []
        try:
            with converter_messages(messages):
                program = torch.export.export(module, (torch.zeros(1, 3, ch, cw),)).run_decompositions({})
                ml = ct.convert(program, inputs=[ct.ImageType(name="frame", shape=(1, 3, ch, cw), color_layout=layout)],
                                outputs=[ct.TensorType(name="classes")], convert_to="mlprogram",
                                compute_precision=ct.precision.FLOAT16 if request.precision == "fp16" else ct.precision.FLOAT32,
                                minimum_deployment_target=getattr(ct.target, target), compute_units=getattr(ct.ComputeUnit, units))
        except Exception as err:
            raise converter_error("coremltools.convert", err, "export without --embed-pre-post for coreml") from err
        path = request.out_dir / MODEL_FILE
        shutil.rmtree(path, ignore_errors=True)
        ml.short_description = f"edgekd {request.metadata.get('arch', '')} segmentation: camera image -> class map"
        ml.save(str(path))
        io_contract = contract.to_manifest(built_with=f"coremltools {ct.__version__}: ImageType input + in-graph resize, "
                                                      "normalisation, argmax", output_dtype="int32")
        io_contract["input"]["coreml"] = ("an image input (CVPixelBuffer / PIL RGB image) of the camera size; Core ML hands "
                                          f"the graph its channels as {contract.channel_order}")
        return {"io_contract": io_contract, "coreml": {"compute_units": units, "minimum_deployment_target": target,
                "weights": "none", "normalization_baked": True, "input_name": "frame", "spec_check": spec_check(path),
                "converter_messages": _counted(_IMPORT_MESSAGES + messages)}}

    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session:
        self.check_runtime_options(runtime_options)
        if sys.platform != "darwin":
            raise BackendUnavailable(f"{MACOS_ONLY} (this is {sys.platform}); the artifact's spec check ran at export")
        return CoreMLSession(Path(artifact_dir), artifact_manifest(artifact_dir), **runtime_options)


class CoreMLSession(Session):
    """macOS only: MLModel.predict frame by frame (Core ML models here take batch 1)."""

    def __init__(self, artifact_dir: Path, manifest: dict[str, Any], *, compute_units: str | None = None) -> None:
        ct = _ct()
        info = manifest.get("coreml", {})
        self.units = _choice(compute_units or info.get("compute_units", "ALL"), COMPUTE_UNITS, "compute units")
        self.model = ct.models.MLModel(str(artifact_dir / MODEL_FILE), compute_units=getattr(ct.ComputeUnit, self.units))
        self.baked = bool(info.get("normalization_baked", False))
        self.normalization = manifest.get("normalization", {})
        self.precision = manifest.get("precision_used", manifest.get("precision", ""))
        self.fused = manifest.get("io_contract")

    def _feed(self, frame: np.ndarray) -> dict[str, Any]:
        if not self.baked:
            return {"input": frame[None]}
        from PIL import Image

        mean = np.asarray(self.normalization["mean"], dtype=np.float32).reshape(3, 1, 1)
        std = np.asarray(self.normalization["std"], dtype=np.float32).reshape(3, 1, 1)
        pixels = frame * std + mean
        if self.normalization.get("channel_order", "RGB") == "BGR":
            pixels = pixels[::-1]
        return {"image": Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(1, 2, 0), "RGB")}

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.fused:  # --embed-pre-post: uint8 N×H×W×3 camera frames in, int32 class maps out
            from PIL import Image

            rgb = [f if self.fused["input"]["channel_order"] == "RGB" else f[..., ::-1] for f in x]
            return np.concatenate([np.asarray(self.model.predict({"frame": Image.fromarray(np.ascontiguousarray(f), "RGB")})["classes"])
                                   for f in rgb])
        return np.concatenate([np.asarray(self.model.predict(self._feed(f))["logits"], dtype=np.float32) for f in x])

    def describe(self) -> dict[str, Any]:
        return {"backend": "coreml", "backend_version": _ct().__version__, "device": "Apple", "compute_units": self.units,
                "precision": self.precision, "normalization_baked": self.baked}
