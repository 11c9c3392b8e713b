"""The benchmark matrix: find artifacts, turn them into cells, describe each candidate.

A cell is one artifact folder (one checkpoint × backend × precision × input size); its key,
used by ``--resume``, is ``<checkpoint sha256[:16]>:<backend>:<precision>:<H>x<W>:<manifest sha[:12]>``
so a re-exported artifact (new manifest) is a new cell while a resumed run skips what it has.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.core.manifest import MANIFEST_NAME, input_hw, parse_manifest
from edgekd.errors import EdgekdError
from edgekd.profiles import DeviceProfile

MANIFEST = MANIFEST_NAME
_MACS_CACHE: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class Cell:
    artifact_dir: Path
    backend: str
    precision: str
    input_size: tuple[int, int]
    artifact_id: str  # sha256 of manifest.json
    checkpoint_sha256: str | None
    manifest: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @property
    def key(self) -> str:
        ckpt = (self.checkpoint_sha256 or "no-checkpoint")[:16]
        return f"{ckpt}:{self.backend}:{self.precision}:{self.input_size[0]}x{self.input_size[1]}:{self.artifact_id[:12]}"

    @property
    def label(self) -> str:
        source = (self.manifest.get("source") or {}).get("name") or self.artifact_dir.parent.name
        return f"{Path(source).stem}/{self.backend}-{self.precision}@{self.input_size[0]}x{self.input_size[1]}"

    @property
    def reference_key(self) -> str | None:
        """The PyTorch FP32 reference this cell's Δ accuracy is taken against: same checkpoint, same input size."""
        if not self.checkpoint_sha256:
            return None
        return f"{self.checkpoint_sha256}@{self.input_size[0]}x{self.input_size[1]}"


def _is_temporary(path: Path) -> bool:
    """A folder inside an export's temporaries (``.<artifact>.*.tmp``, ``.edgekd-work-*``): never a candidate."""
    return any(part.startswith(".edgekd-work-") or (part.startswith(".") and part.endswith(".tmp")) for part in path.parts)


def incomplete_reason(manifest: dict[str, Any]) -> str | None:
    """Why an artifact is not complete (its export was killed before the end), or None.

    Export writes ``complete: false`` (and parity ``pending``) until the artifact is whole, then
    ``complete: true``; manifests from before that flag count as complete unless parity is pending.
    """
    if manifest.get("complete") is False or (manifest.get("parity") or {}).get("status") == "pending":
        return "its manifest says the export did not complete (parity pending); re-export it"
    return None


def discover_artifacts(paths: list[str | Path]) -> list[Path]:
    """Artifact folders (holding manifest.json) given directly or found below the given folders."""
    found: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists():
            raise EdgekdError(f"artifact path {str(p)!r} does not exist; pass an artifact folder or a folder of them (e.g. artifacts/)")
        if (p / MANIFEST).is_file():
            if _is_temporary(p.resolve()):
                raise EdgekdError(f"{p} is the temporary folder of an export that did not finish; pass the artifact "
                                  "folder it would have become (re-export it), not its .tmp")
            found.append(p.resolve())
            continue
        below = sorted(m.parent.resolve() for m in p.rglob(MANIFEST) if not _is_temporary(m.parent.relative_to(p)))
        if not below:
            raise EdgekdError(f"no {MANIFEST} in or below {str(p)!r}; make artifacts with `edgekd export` first")
        found.extend(below)
    return list(dict.fromkeys(found))


def read_cell(artifact_dir: Path, profile: DeviceProfile) -> Cell:
    path = artifact_dir / MANIFEST
    raw = path.read_bytes()
    manifest = parse_manifest(path, raw)
    shape = manifest["input_shape"]
    h, w = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else profile.input_size
    return Cell(artifact_dir, manifest["backend"], manifest["precision"], (int(h), int(w)),
                hashlib.sha256(raw).hexdigest(), (manifest.get("source") or {}).get("sha256"), manifest)


def plan_cells(profile: DeviceProfile, artifact_dirs: list[Path]) -> tuple[list[Cell], list[str]]:
    """The cells this device benchmarks, and a note per artifact it does not (wrong backend/precision)."""
    cells, skipped = [], []
    for d in artifact_dirs:
        cell = read_cell(d, profile)
        incomplete = incomplete_reason(cell.manifest)
        if incomplete:
            skipped.append(f"{d}: not benchmarked: {incomplete}")
        elif cell.backend not in profile.accepted_backends:
            skipped.append(f"{d}: backend {cell.backend} is not run on {profile.name} "
                           f"(it runs {', '.join(profile.accepted_backends)})")
        elif cell.precision not in profile.precisions:
            skipped.append(f"{d}: precision {cell.precision} is not in {profile.name}'s precisions ({', '.join(profile.precisions)})")
        else:
            cells.append(cell)
    return cells, skipped


def _macs(manifest: dict[str, Any], hw: tuple[int, int]) -> dict[str, Any]:
    """MACs at the cell's input size: the network's own count from the manifest when export recorded it
    for this size (a pruned network is smaller than its architecture), else the architecture's, computed
    once per shape (weights do not matter)."""
    if isinstance(manifest.get("macs"), int) and list(manifest.get("macs_input_size") or []) == list(hw):
        return {"macs": manifest["macs"], "macs_source": "manifest"}
    key = json.dumps([manifest.get("arch"), manifest.get("arch_kwargs"), manifest.get("num_classes"), hw], sort_keys=True)
    if key not in _MACS_CACHE:
        try:
            from edgekd.models import create_model
            from edgekd.models.complexity import count_macs

            model = create_model(manifest["arch"], num_classes=int(manifest["num_classes"]), **(manifest.get("arch_kwargs") or {}))
            _MACS_CACHE[key] = {"macs": count_macs(model, hw), "macs_source": "edgekd.models.complexity.count_macs"}
        except Exception as err:  # an arch this edgekd cannot build: say so, keep benchmarking
            _MACS_CACHE[key] = {"macs": None, "macs_reason": f"cannot build {manifest.get('arch')!r} here: {err}"}
    return _MACS_CACHE[key]


def candidate_block(cell: Cell) -> dict[str, Any]:
    m = cell.manifest
    source = m.get("source") or {}
    trained = source.get("trained_with") or {}
    return {
        "artifact_dir": str(cell.artifact_dir), "artifact_id": cell.artifact_id, "label": cell.label,
        "checkpoint": source.get("name"), "checkpoint_sha256": cell.checkpoint_sha256,
        "arch": m.get("arch"), "arch_kwargs": m.get("arch_kwargs"), "params": m.get("params"),
        **_macs(m, cell.input_size),
        "num_classes": m.get("num_classes"), "distillation_method": trained.get("method"),
        "distillation": {k: trained.get(k) for k in ("losses", "teacher_sha256", "teachers", "temperature", "epochs") if k in trained} or None,
        "checkpoint_metrics": source.get("metrics"), "precision_stored": m.get("precision_used"),
        "export_parity": m.get("parity"), "subnormals_flushed": m.get("subnormals_flushed"),
    }


def select_sizes(artifact_dirs: list[Path], sizes: list[tuple[int, int]]) -> list[Path]:
    """The artifact folders whose input size is one of ``sizes`` (``bench --input-size``); all when none asked.

    A size no artifact has is an error naming the sizes there are and how to export one.
    """
    if not sizes:
        return artifact_dirs
    found: dict[Path, Any] = {}
    for d in artifact_dirs:
        try:
            found[d] = input_hw(parse_manifest(d / MANIFEST, (d / MANIFEST).read_bytes(), required=()))
        except OSError as err:
            raise EdgekdError(f"{d / MANIFEST} cannot be read ({err}); re-export the artifact") from err
    have = sorted({hw for hw in found.values() if all(isinstance(v, int) for v in hw)})
    missing = [s for s in sizes if s not in have]
    if missing:
        raise EdgekdError(f"no artifact at input size {', '.join(f'{h}x{w}' for h, w in missing)}; the artifacts given are at "
                          f"{', '.join(f'{h}x{w}' for h, w in have) or 'dynamic sizes only'} (export more with "
                          "`edgekd export ... --input-size HxW[,HxW...]`)")
    return [d for d, hw in found.items() if hw in sizes]


def find_reference(cell: Cell, cells: list[Cell]) -> Path | None:
    """A PyTorch FP32 artifact of the same checkpoint at the same input size: among the cells, else beside the cell's folder."""
    if not cell.checkpoint_sha256:
        return None
    for other in cells:
        if (other.backend == "torch" and other.precision == "fp32" and other.checkpoint_sha256 == cell.checkpoint_sha256
                and other.input_size == cell.input_size):
            return other.artifact_dir
    for sibling in sorted(cell.artifact_dir.parent.glob(f"*/{MANIFEST}")):
        try:
            m = json.loads(sibling.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if (m.get("backend") == "torch" and m.get("precision") == "fp32"
                and (m.get("source") or {}).get("sha256") == cell.checkpoint_sha256 and input_hw(m) == cell.input_size):
            return sibling.parent
    return None
