"""The surface every runtime backend offers (after MMDeploy's backend manager).

One file per backend (onnxruntime.py, openvino.py, coreml.py, tensorrt.py, torch.py); the
benchmark core and export reach them only through ``edgekd.backends.registry``.
"""
from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgekd.core.manifest import MANIFEST_NAME, manifest_or_empty  # noqa: F401  (MANIFEST_NAME re-exported)
from edgekd.errors import EdgekdError

if TYPE_CHECKING:
    import numpy as np
    from edgekd.backends.prepost import FrameContract



def artifact_manifest(artifact_dir: Path) -> dict[str, Any]:
    """The artifact's manifest.json as a dict ({} when there is none, e.g. hand-made folders)."""
    return manifest_or_empty(artifact_dir)


class BackendUnavailable(EdgekdError):
    """The backend cannot run here (package missing, needs a GPU or macOS); the message says why and the fix."""


class UnsupportedOptionError(EdgekdError):
    """A runtime or export option the backend does not know; the message lists the known ones."""


@dataclass
class ExportRequest:
    """What to export: a model in eval mode, its input shape and options.

    ``onnx_path`` is the one ONNX graph the export pipeline makes per checkpoint, shared by the
    ONNX-based backends (ONNX Runtime, OpenVINO, TensorRT) so they all convert the same graph.
    ``calib_pixels`` holds the same calibration images as ``calib_images`` before normalisation
    (uint8 RGB, 4× smaller), for backends that store them for a later build on the target.
    ``val_images``/``val_masks`` are labelled validation images for accuracy-aware quantisation.
    ``metadata`` is the checkpoint's metadata document (CheckpointMeta as a dict).
    """

    model: Any  # torch.nn.Module taking a normalised N×3×H×W float tensor
    input_size: tuple[int, int]  # (H, W)
    precision: str  # fp32 | fp16 | int8
    out_dir: Path
    calib_images: np.ndarray | None = None  # normalised float32 N×3×H×W from real data
    dynamic_batch: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    onnx_path: Path | None = None
    calib_pixels: np.ndarray | None = None  # uint8 RGB N×3×H×W, the calib_images before normalisation
    val_images: np.ndarray | None = None  # normalised float32 N×3×H×W
    val_masks: np.ndarray | None = None  # int64 N×H×W labels
    metadata: dict[str, Any] = field(default_factory=dict)
    val_num_classes: int | None = None  # the labelled images' class count and ignore index (for mIoU)
    val_ignore_index: int | None = None
    log: Any = None  # callable(str) for progress lines, or None
    qat_onnx_path: Path | None = None  # QDQ graph of a quantisation-aware-trained checkpoint: INT8 as trained, no PTQ


class Session(ABC):
    """A loaded artifact that runs inference the way an app would."""

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits N×C×H×W (float32) for a normalised float32 input N×3×H×W."""

    def sync(self) -> None:
        """Block until device work has finished (no-op for synchronous CPU runtimes)."""

    def bind(self, x: np.ndarray) -> Callable[[], np.ndarray]:
        """A zero-argument per-frame step over ``x``'s memory: what a latency-bound app calls each frame.

        The app's pre-processing writes the next frame into ``x`` in place; the step runs one
        inference on it and returns the output, which may be a view of the runtime's own output
        buffer (valid until the next call; copy it to keep it). Backends override this to bind
        the input and output buffers once (no per-call tensor creation, copy or allocation);
        the default is ``run(x)``.
        """
        return lambda: self.run(x)

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What really runs: provider/device, precision actually used, threads, versions."""


class Backend(ABC):
    name: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    #: Precisions the runtime can run an exported artifact in besides ``precisions`` (OpenVINO runs an
    #: fp32 artifact in bf16 through its inference-precision hint); a device profile may list them.
    runtime_precisions: tuple[str, ...] = ()
    pip_extra: str = ""
    #: True when export converts the shared ONNX graph (``ExportRequest.onnx_path``).
    needs_onnx: bool = False
    #: Options ``load(..., **runtime_options)`` accepts, with a one-line meaning each.
    runtime_options: dict[str, str] = {}
    #: Export options (``ExportRequest.options``) this backend reads, with a one-line meaning each.
    #: ``edgekd export`` turns each into a flag (``coreml_weights`` → ``--coreml-weights``) in a group
    #: titled ``export_group``, except the pipeline-wide ones it declares itself (``max_accuracy_drop``).
    export_options: dict[str, str] = {}
    #: The value type of an export option when it is not a string: ``int``, or ``bool`` for a switch.
    export_option_types: dict[str, type] = {}
    #: Title of this backend's group of export flags in ``edgekd export --help``.
    export_group: str = ""
    #: Pre-flight checks ``edgekd doctor`` runs for this backend, by name (the doctor implements
    #: them: ``edgekd.doctor.BACKEND_CHECKS``): "tensorrt-ops", "coreml-ops", "openvino-compile",
    #: "onnxruntime-session" on the ONNX graph, "openvino-default-precision" on the device profile,
    #: "mobile-artifact" on an exported artifact.
    doctor_checks: tuple[str, ...] = ()
    #: Whether the doctor checks an ONNX graph for it at all (False for eager PyTorch).
    doctor_graph: bool = True
    #: Python module the graph checks need installed here (they are skipped, with a note, without it).
    doctor_needs: str | None = None
    #: What a dynamic input shape costs on this runtime (the doctor's ``dynamic-shape`` finding), and
    #: whether a dynamic H or W is a warning there (it is where the runtime tunes for one shape).
    dynamic_shape_cost: str = "shapes not known at build time prevent static memory planning"
    dynamic_spatial_warns: bool = False
    #: Whether the runtime runs ops of non-standard ONNX domains (ONNX Runtime's own contrib ops).
    runs_custom_onnx_domains: bool = False

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        """The device profile's ``runtime:`` block (``edgekd.profiles.RuntimeOptions``) as this backend's
        ``load()`` options. Each backend maps the fields it understands; an option it does not declare
        is never passed (``load`` refuses unknown options rather than ignoring them)."""
        return {}

    @abstractmethod
    def is_available(self) -> tuple[bool, str]:
        """(True, "") or (False, reason with the fix)."""

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def export(self, request: ExportRequest) -> dict[str, Any]:
        """Write the runtime's files into ``request.out_dir``; return manifest fields to add."""

    @abstractmethod
    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session: ...

    def embed_pre_post(self, request: ExportRequest, contract: "FrameContract") -> dict[str, Any]:
        """Rewrite the artifact just exported into ``request.out_dir`` as the fused frame -> class-map
        graph (``--embed-pre-post``); returns manifest fields: ``io_contract`` and any the rewrite
        changed. Backends that can build one override this."""
        from edgekd.backends.registry import backends_where

        raise UnsupportedOptionError(f"--embed-pre-post is not available for {self.name}; it is for "
                                     f"{', '.join(backends_where(Backend.fuses_pre_post))}")

    def fuses_pre_post(self) -> bool:
        """Whether this backend builds fused frame -> class-map artifacts (it overrides ``embed_pre_post``)."""
        return type(self).embed_pre_post is not Backend.embed_pre_post

    def parity_runs(self, precision: str) -> dict[str, dict[str, Any]]:
        """Named runtime-option sets to measure parity with; the first is the headline figure."""
        return {"default": {}}

    def check_runtime_options(self, options: dict[str, Any]) -> None:
        """Refuse options this backend does not know, naming the known ones (never ignore them silently)."""
        unknown = sorted(set(options) - set(self.runtime_options))
        if unknown:
            known = ", ".join(sorted(self.runtime_options)) or "none"
            raise UnsupportedOptionError(f"{self.name} does not take runtime option(s) {unknown}; known: {known}")
