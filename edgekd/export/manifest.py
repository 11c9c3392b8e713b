"""``manifest.json``: the self-description of one artifact (docs/export.md, "manifest.json").

Flat top-level keys for what every consumer reads (``backend``, ``precision``,
``precision_used``, ``input_shape``, ``normalization``, ``runtime_file``), nested blocks for
the rest. A bench reads ``normalization`` to pre-process frames exactly as the model expects.
"""
from __future__ import annotations

import json
import math
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgekd import __version__
from edgekd.core.manifest import MANIFEST_NAME, manifest_path, parse_manifest
from edgekd.errors import EdgekdError

FORMAT = "edgekd-artifact"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "backend", "precision", "input_shape", "normalization", "num_classes")


def file_sizes(folder: Path) -> dict[str, int]:
    """Bytes per file under ``folder`` (relative POSIX paths), the manifest itself excluded."""
    sizes = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and path.name != MANIFEST_NAME:
            sizes[path.relative_to(folder).as_posix()] = path.stat().st_size
    return sizes


def build_manifest(*, source: dict[str, Any], meta: dict[str, Any], output_stride: int, backend: str, backend_version: str,
                   precision: str, input_size: tuple[int, int], dynamic_batch: bool, onnx_info: dict[str, Any] | None,
                   options: dict[str, Any], calibration: dict[str, Any] | None, subnormals_flushed: int | None,
                   fields: dict[str, Any], parity: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Every key docs/export.md describes, from the export's pieces and the backend's own fields."""
    fields = dict(fields)
    calibration = _merge_calibration(calibration, fields.pop("calibration", None))
    h, w = input_size
    batch = "N" if dynamic_batch else 1
    sizes = file_sizes(folder)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "edgekd_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": source, "arch": meta["arch"], "arch_kwargs": meta.get("arch_kwargs", {}),
        "num_classes": meta["num_classes"], "class_names": meta["class_names"], "ignore_index": meta["ignore_index"],
        "params": meta.get("params"), "macs": meta.get("macs"), "macs_input_size": [h, w], "output_stride": output_stride, "normalization": meta["normalization"],
        "backend": backend, "backend_version": backend_version, "precision": precision,
        "precision_used": fields.pop("precision_used", precision), "runtime_file": fields.pop("runtime_file", None),
        "input_shape": [batch, 3, h, w], "input_dtype": "float32", "input_layout": "NCHW, normalised (see normalization)",
        "output_shape": [batch, meta["num_classes"], h, w], "dynamic_batch": dynamic_batch,
        "onnx": onnx_info, "export_options": options, "calibration": calibration,
        "subnormals_flushed": subnormals_flushed, "files": sizes, "size_bytes": sum(sizes.values()),
        "parity": parity,
    }
    manifest.update(fields)
    return manifest


def _merge_calibration(data: dict[str, Any] | None, backend_part: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {**data, **(backend_part or {})}


def finite_json(value: Any) -> Any:
    """``value`` with every NaN/Inf float replaced by None: ``NaN`` is not JSON (strict parsers reject the file)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Path:
    """Write strict JSON (no NaN) via a temporary file and a rename."""
    path = Path(folder) / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(finite_json(manifest), indent=2, default=str, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(artifact_dir: str | os.PathLike) -> dict[str, Any]:
    """The artifact's manifest, checked for the keys every consumer relies on."""
    path = manifest_path(artifact_dir)
    if not path.is_file():
        raise EdgekdError(f"{artifact_dir} has no {MANIFEST_NAME}; is it an artifact folder made by `edgekd export`?")
    manifest = parse_manifest(path, path.read_bytes(), required=())
    missing = [k for k in REQUIRED if k not in manifest]
    if manifest.get("format") != FORMAT or missing:
        raise EdgekdError(f"{path} is not an edgekd artifact manifest (format={manifest.get('format')!r}, missing {missing}); re-export it")
    if manifest["format_version"] > FORMAT_VERSION:
        raise EdgekdError(f"{path} has format_version {manifest['format_version']}, newer than this edgekd reads ({FORMAT_VERSION}); upgrade edgekd")
    return manifest
