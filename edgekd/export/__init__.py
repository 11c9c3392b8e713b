"""Export: checkpoints → per-backend artifacts with a manifest and parity (see docs/export.md).

``export_artifacts(checkpoint, ExportOptions(...))`` writes artifacts (``export_checkpoint`` takes the
options as keywords), ``read_manifest`` reads one, ``load_artifact`` opens one
as a :class:`~edgekd.backends.base.Session` through the backend its manifest names.
"""
from __future__ import annotations

import os
from typing import Any

from edgekd.backends.base import Session
from edgekd.export.manifest import read_manifest
from edgekd.export.options import PRECISIONS, ExportOptions
from edgekd.export.pipeline import export_artifacts, export_checkpoint
from edgekd.input_sizes import parse_input_size


def load_artifact(artifact_dir: str | os.PathLike, **runtime_options: Any) -> Session:
    """Open an artifact for inference; ``runtime_options`` are the backend's (threads, precision_hint, ...)."""
    from pathlib import Path

    from edgekd.backends.registry import get_backend

    manifest = read_manifest(artifact_dir)
    return get_backend(manifest["backend"]).load(Path(artifact_dir), **runtime_options)


__all__ = ["PRECISIONS", "ExportOptions", "export_artifacts", "export_checkpoint", "load_artifact", "parse_input_size", "read_manifest"]
