"""The surface every runtime backend offers (after MMDeploy's backend manager).

One file per backend (onnxruntime.py, openvino.py, coreml.py, tensorrt.py, torch.py); the
benchmark core and export reach them only through ``edgekd.backends.registry``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.errors import EdgekdError


class BackendUnavailable(EdgekdError):
    """The backend cannot run here (package missing, needs a GPU or macOS); the message says why and the fix."""


@dataclass
class ExportRequest:
    """What to export: a model in eval mode, its input shape and options."""

    model: Any  # torch.nn.Module taking a normalised N×3×H×W float tensor
    input_size: tuple[int, int]  # (H, W)
    precision: str  # fp32 | fp16 | int8
    out_dir: Path
    calib_images: np.ndarray | None = None  # normalised float32 N×3×H×W from real data
    dynamic_batch: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class Session(ABC):
    """A loaded artifact that runs inference the way an app would."""

    @abstractmethod
    def run(self, x: np.ndarray) -> np.ndarray:
        """Logits N×C×H×W (float32) for a normalised float32 input N×3×H×W."""

    def sync(self) -> None:
        """Block until device work has finished (no-op for synchronous CPU runtimes)."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What really runs: provider/device, precision actually used, threads, versions."""


class Backend(ABC):
    name: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    pip_extra: str = ""

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
