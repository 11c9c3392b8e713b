"""PyTorch eager FP32: the reference every other backend is compared with, and a benchmark row.

Export writes no converted model, only the (subnormal-flushed) weights as an edgekd checkpoint
beside the manifest, so the artifact loads the same way on any machine with torch.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, ExportRequest, Session

MODEL_FILE = "model.safetensors"


class TorchBackend(Backend):
    name = "torch"
    doctor_graph = False  # eager: no graph to check
    precisions = ("fp32",)
    pip_extra = ""
    runtime_options = {
        "threads": "torch.set_num_threads (process-wide; default: torch's choice)",
        "flush_denormal": "torch.set_flush_denormal(True) while running (process-wide)",
    }

    def options_from_profile(self, runtime: Any) -> dict[str, Any]:
        opts = {} if runtime.threads is None else {"threads": runtime.threads}
        return {**opts, "flush_denormal": True} if runtime.denormals_as_zero else opts

    def is_available(self) -> tuple[bool, str]:
        return True, ""

    def version(self) -> str:
        import torch

        return torch.__version__

    def export(self, request: ExportRequest) -> dict[str, Any]:
        from edgekd.checkpoint import CheckpointMeta, save_checkpoint

        known = CheckpointMeta.__dataclass_fields__
        meta = CheckpointMeta.from_dict({k: v for k, v in request.metadata.items() if k in known})
        save_checkpoint(request.out_dir / MODEL_FILE, request.model, meta)
        return {"runtime_file": MODEL_FILE, "precision_used": "fp32 (PyTorch eager)"}

    def load(self, artifact_dir: Path, **runtime_options: Any) -> Session:
        from edgekd.checkpoint import load_checkpoint

        self.check_runtime_options(runtime_options)
        model, _ = load_checkpoint(Path(artifact_dir) / MODEL_FILE)
        return TorchSession(model, **runtime_options)


class TorchSession(Session):
    """Eager FP32 on CPU under ``torch.inference_mode``."""

    def __init__(self, model: Any, *, threads: int | None = None, flush_denormal: bool = False) -> None:
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.model = model.eval()
        self.flush_denormal = bool(flush_denormal)
        self._torch = torch

    def run(self, x: np.ndarray) -> np.ndarray:
        torch = self._torch
        previous = None
        if self.flush_denormal:
            previous = torch.set_flush_denormal(True)
        try:
            with torch.inference_mode():
                return self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()
        finally:
            if previous is not None:
                torch.set_flush_denormal(False)

    def describe(self) -> dict[str, Any]:
        torch = self._torch
        return {
            "backend": "torch", "backend_version": torch.__version__, "device": "CPU", "provider": "eager",
            "precision": "fp32", "threads": torch.get_num_threads(), "flush_denormal": self.flush_denormal,
        }
