"""ExecuTorch: ``.pte`` from ``torch.export`` lowered to XNNPACK, run by ``executorch.runtime``.

Export is PyTorch-native end to end: ``torch.export`` → ``to_edge_transform_and_lower`` with a
partitioner → ``to_executorch()`` → ``model.pte``. INT8 is PT2E: ``XNNPACKQuantizer`` (symmetric,
per-channel int8 weights, int8 activations) → ``prepare_pt2e`` → observers fed real calibration
images → ``convert_pt2e`` → the same lowering. Which ops the delegate took and which fell back to
ExecuTorch's portable kernels is read from the lowered program (``get_delegation_info``) and written
to the manifest, because a fallback op runs un-optimised on the phone too (the same XNNPACK library
is ExecuTorch's CPU path on Android).

Other delegates (Core ML, Vulkan, QNN) are recipes: the ``.pte`` is lowered here when the
partitioner's ahead-of-time tools are installed, and the manifest states the runtime the target
must have (``runs_on``); nothing runs or is timed here for them.
"""
from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable, ExportRequest, Session, artifact_manifest
from edgekd.backends.calibration import CalibrationBatches
from edgekd.backends.onnx_export import converter_error
from edgekd.errors import EdgekdError

MODEL_FILE = "model.pte"
INSTALL = "pip install 'edgekd[executorch]'"
#: delegate name → (runtime backend id in the .pte, what the target must run, where it can run)
DELEGATES: dict[str, tuple[str, str]] = {
    "xnnpack": ("XnnpackBackend", "ExecuTorch runtime built with the XNNPACK backend (CPU; Android arm64, iOS, Linux, this host)"),
    "coreml": ("CoreMLBackend", "ExecuTorch runtime with the Core ML backend on iOS 17+/macOS 14+ (CPU, GPU, Neural Engine)"),
    "vulkan": ("VulkanBackend", "ExecuTorch runtime with the Vulkan backend on an Android GPU with Vulkan 1.1+"),
    "qnn": ("QnnBackend", "ExecuTorch runtime with the QNN backend and Qualcomm's QNN libraries on a Snapdragon HTP"),
}


def _runtime():
    """``executorch.runtime.Runtime`` (torchao's optional CUDA kernels print load failures: kept quiet)."""
    try:
        with _quiet():
            from executorch.runtime import Runtime
    except ImportError as err:
        raise BackendUnavailable(f"executorch is not installed ({err}); {INSTALL}") from err
    return Runtime.get()


def _threadpool():
    """The pybindings' threadpool controls (experimental API of executorch 1.5)."""
    from executorch.extension.pybindings import portable_lib

    return portable_lib._unsafe_reset_threadpool, portable_lib._threadpool_get_thread_count  # noqa: SLF001


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("executorch")
    except PackageNotFoundError as err:
        raise BackendUnavailable(f"executorch is not installed; {INSTALL}") from err


@contextlib.contextmanager
def _quiet():
    logging.getLogger("torchao").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _partitioner(delegate: str) -> Any:
    """The partitioner object for ``delegate``; its ahead-of-time package missing is BackendUnavailable."""
    try:
        with _quiet():
            if delegate == "xnnpack":
                from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
                return XnnpackPartitioner()
            if delegate == "coreml":
                from executorch.backends.apple.coreml.partition import CoreMLPartitioner
                return CoreMLPartitioner()
            if delegate == "vulkan":
                from executorch.backends.vulkan.partitioner.vulkan_partitioner import VulkanPartitioner
                return VulkanPartitioner()
    except Exception as err:  # noqa: BLE001 — any import failure means this delegate cannot be lowered here
        raise BackendUnavailable(f"the ExecuTorch {delegate} partitioner cannot be imported here ({type(err).__name__}: "
                                 f"{str(err)[:200]}); lower on a machine with its SDK, or use --executorch-delegate xnnpack") from err
    # QnnPartitioner needs compiler specs from the QNN SDK's libraries (generate_qnn_executorch_compiler_spec
    # with the target SoC): nothing to lower with unless the SDK is installed and configured.
    raise BackendUnavailable("the QNN partitioner needs Qualcomm's QNN SDK (QNN_SDK_ROOT) and a compiler spec for the "
                             "target SoC to lower; run the recipe in docs/export.md on a machine with the SDK, or use "
                             "--executorch-delegate xnnpack")


def _op_name(node_name: str) -> str:
    """``aten_convolution_default_3`` → ``aten.convolution.default`` (delegation info keys ops by node name)."""
    base = re.sub(r"_\d+$", "", node_name)
    if not base.startswith("aten_"):
        return base
    op, _, overload = base[len("aten_"):].rpartition("_")
    return f"aten.{op}.{overload}" if op else f"aten.{overload}"


def delegation(graph_module: Any, delegate: str) -> dict[str, Any]:
    """Delegated vs fallback op counts of a lowered program, per op type (executorch.devtools)."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    by_op = {_op_name(k): {"delegated": v.delegated, "not_delegated": v.non_delegated}
             for k, v in sorted(info.delegation_by_operator.items()) if k not in ("getitem",)}
    # compute ops left to the portable kernels (getitem, dim-order copies and quantize/dequantize
    # at partition edges are bookkeeping, counted in not_delegated_nodes but not listed)
    not_delegated = sorted(k for k, v in by_op.items() if v["not_delegated"] and k.startswith("aten."))
    delegated = sum(v["delegated"] for v in by_op.values())
    fallback = sum(v["not_delegated"] for v in by_op.values())
    return {"delegate": f"{delegate} ({DELEGATES[delegate][0]})", "partitions": info.num_delegated_subgraphs,
            "total_nodes": delegated + fallback, "delegated_nodes": delegated, "not_delegated_nodes": fallback,
            "by_op": by_op, "not_delegated_ops": not_delegated}


def _quantize(model: Any, example: tuple[Any, ...], batches: CalibrationBatches) -> Any:
    """PT2E INT8 for XNNPACK: symmetric per-channel weights, activation ranges observed on real images."""
    import torch

    with _quiet():
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer, get_symmetric_quantization_config
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    quantizer = XNNPACKQuantizer()
    quantizer.set_global(get_symmetric_quantization_config(is_per_channel=True))
    prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    with torch.no_grad():
        for batch in batches:
            prepared(torch.from_numpy(batch))
    return convert_pt2e(prepared)


def lower(model: Any, example: tuple[Any, ...], delegate: str) -> tuple[bytes, dict[str, Any]]:
    """``torch.export`` → ``to_edge_transform_and_lower`` → ``.pte`` bytes, with the delegation counts."""
    import torch

    with _quiet():
        from executorch.exir import to_edge_transform_and_lower
    partitioner = _partitioner(delegate)
    with _quiet():
        program = torch.export.export(model, example)
        edge = to_edge_transform_and_lower(program, partitioner=[partitioner])
        info = delegation(edge.exported_program().graph_module, delegate)
        return edge.to_executorch().buffer, info


class ExecuTorchBackend(Backend):
    name = "executorch"
    doctor_checks = ("mobile-artifact",)
    precisions = ("fp32", "int8")
    pip_extra = "executorch"
    runtime_options = {"threads": "XNNPACK threadpool size (executorch's process-wide pool; default: its own choice)"}
    export_options = {"executorch_delegate": f"{' | '.join(DELEGATES)} (default xnnpack; the others are recipes for their target)"}
    export_group = "ExecuTorch (Android; XNNPACK on the CPU)"

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        return {} if runtime.threads is None else {"threads": runtime.threads}

    def is_available(self) -> tuple[bool, str]:
        try:
            _runtime()
        except BackendUnavailable as err:
            return False, str(err)
        return True, ""

    def version(self) -> str:
        return _version()

    def export(self, request: ExportRequest) -> dict[str, Any]:
        import torch

        delegate = self._delegate(request)
        if request.dynamic_batch:
            raise EdgekdError("ExecuTorch export uses a fixed batch of 1 (one camera frame); drop --dynamic-batch for executorch")
        h, w = request.input_size
        example = (torch.zeros(1, 3, h, w),)
        model = request.model.eval()
        quant = None
        try:
            if request.precision == "int8":
                batches = CalibrationBatches(request.calib_images, batch_size=1)
                model = _quantize(model, example, batches)
                quant = {"tool": "PT2E XNNPACKQuantizer (torchao prepare_pt2e/convert_pt2e)",
                         "weights": "int8 symmetric per-channel", "activations": "int8 per-tensor (ranges from calibration)",
                         "num_images": batches.num_images_used}
            buffer, info = lower(model, example, delegate)
        except (EdgekdError, BackendUnavailable):
            raise
        except Exception as err:
            raise converter_error("executorch to_edge_transform_and_lower", err, "replace that op, or export another backend") from err
        (request.out_dir / MODEL_FILE).write_bytes(buffer)
        runs_here = delegate == "xnnpack"
        fields: dict[str, Any] = {
            "runtime_file": MODEL_FILE, "converter": f"executorch {_version()} torch.export → to_edge_transform_and_lower",
            "precision_used": "int8 weights and activations (PT2E)" if quant else "fp32", "delegation": info,
            "executorch": {"delegate": delegate, "runs_on": DELEGATES[delegate][1], "runs_here": runs_here,
                           "backend_id": DELEGATES[delegate][0], "method": "forward", "input_shape": [1, 3, h, w]},
        }
        if quant:
            fields["quantization"] = quant
            fields["calibration"] = {"method": "minmax observers (XNNPACKQuantizer default)"}
        return fields

    @staticmethod
    def _delegate(request: ExportRequest) -> str:
        delegate = str(request.options.get("executorch_delegate", "xnnpack")).lower()
        if delegate not in DELEGATES:
            from edgekd.backends.registry import nearest

            raise EdgekdError(f"--executorch-delegate {delegate!r}{nearest(delegate, list(DELEGATES))} is not one of {', '.join(DELEGATES)}")
        if delegate != "xnnpack" and request.precision == "int8":
            raise EdgekdError(f"executorch int8 here uses the XNNPACK quantizer; for {delegate} quantise with its own "
                              "quantizer on the target's toolchain, or export --executorch-delegate xnnpack")
        return delegate

    def parity_runs(self, precision: str) -> dict[str, dict[str, Any]]:
        return {"default": {}}

    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session:
        self.check_runtime_options(runtime_options)
        manifest = artifact_manifest(artifact_dir)
        et = manifest.get("executorch") or {}
        if et and not et.get("runs_here", True):
            raise BackendUnavailable(f"{artifact_dir} is an ExecuTorch {et.get('delegate')} recipe: it needs {et.get('runs_on')}; "
                                     "bench it on that device")
        return ExecuTorchSession(Path(artifact_dir) / MODEL_FILE, manifest, **runtime_options)


class ExecuTorchSession(Session):
    """One loaded ``forward`` method (batch 1, the shape it was exported at); frames of a batch run one by one."""

    def __init__(self, path: Path, manifest: dict[str, Any], *, threads: int | None = None) -> None:
        if not path.is_file():
            raise EdgekdError(f"{path} does not exist; is {path.parent} an executorch artifact made by `edgekd export`?")
        runtime = _runtime()
        reset, count = _threadpool()
        if threads:
            reset(int(threads))  # process-wide: one worker process per bench cell, so no other model shares it
        self.threads_used = count()
        self.threads_requested = threads
        self.method = runtime.load_program(path).load_method("forward")
        self.precision = manifest.get("precision_used", manifest.get("precision", "fp32"))
        self.delegation = manifest.get("delegation") or {}
        self._version = _version()

    def run(self, x: np.ndarray) -> np.ndarray:
        import torch

        outs = []
        for frame in x:
            value = torch.from_numpy(np.ascontiguousarray(frame[None], dtype=np.float32))
            outs.append(self.method.execute([value])[0].numpy().copy())  # the output may alias the planned buffer
        return np.concatenate(outs).astype(np.float32, copy=False)

    def bind(self, x: np.ndarray):
        """Wrap ``x`` once as a tensor sharing its memory: each call runs the method on the frame written there."""
        import torch

        value = torch.from_numpy(x[:1]) if x.flags.c_contiguous and x.dtype == np.float32 else None
        if value is None:
            return lambda: self.run(x)
        return lambda: self.method.execute([value])[0].numpy()

    def describe(self) -> dict[str, Any]:
        d = self.delegation
        return {
            "backend": "executorch", "backend_version": self._version, "device": "CPU",
            "provider": "XNNPACK delegate" if d.get("delegated_nodes") else "ExecuTorch portable kernels",
            "precision": self.precision, "threads": self.threads_used,
            "threads_requested": self.threads_requested or "executorch default",
            "delegated_nodes": d.get("delegated_nodes"), "total_nodes": d.get("total_nodes"),
            "partitions": d.get("partitions"), "not_delegated_ops": d.get("not_delegated_ops"),
        }
