"""The artifact manifest (``manifest.json``): its name, reading it with validation, its input size.

Written by ``edgekd.export`` and read by the backends, the bench (also inside the worker process
on a device), the doctor and compare. Only the standard library is imported here, so the bench
worker reads a manifest without pulling in PyTorch (~200 MB RSS a deployed runtime lacks).
The format itself is described in docs/export.md.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError

MANIFEST_NAME = "manifest.json"
# the keys every consumer (session loading, pre-processing, the bench) relies on
CORE_KEYS = ("backend", "precision", "input_shape", "normalization")


class ManifestError(EdgekdError):
    """A missing, unreadable or incomplete manifest; the message names the file and says re-export."""


def manifest_path(artifact_dir: str | os.PathLike) -> Path:
    return Path(artifact_dir) / MANIFEST_NAME


def has_manifest(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is an artifact folder (holds a manifest)."""
    return manifest_path(folder).is_file()


def manifest_or_empty(artifact_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest as a dict, ``{}`` when there is none (hand-made folders a backend can still load)."""
    path = manifest_path(artifact_dir)
    return json.loads(path.read_text()) if path.is_file() else {}


def parse_manifest(path: Path, raw: bytes | str, required: tuple[str, ...] = CORE_KEYS) -> dict[str, Any]:
    """The manifest in ``raw`` (the bytes of ``path``), checked for the ``required`` keys."""
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ManifestError(f"{path} is not valid JSON ({err}); re-export the artifact") from err
    missing = [k for k in required if k not in manifest]
    if missing:
        raise ManifestError(f"{path} lacks {missing}; it is not an edgekd artifact manifest — re-export it")
    return manifest


def read_manifest(artifact_dir: str | os.PathLike, required: tuple[str, ...] = CORE_KEYS) -> dict[str, Any]:
    """The artifact's manifest, checked for the ``required`` keys (a missing file names the fix)."""
    path = manifest_path(artifact_dir)
    if not path.is_file():
        raise ManifestError(f"{artifact_dir} has no {MANIFEST_NAME}; is it an artifact folder made by `edgekd export`?")
    return parse_manifest(path, path.read_bytes(), required)


def input_hw(manifest: dict[str, Any]) -> tuple[Any, Any]:
    """(height, width) of the artifact's input; an entry is a string or None where the axis is dynamic."""
    shape = manifest.get("input_shape") or [None] * 4
    return tuple(shape[2:4]) if len(shape) == 4 else (None, None)
