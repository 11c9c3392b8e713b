"""Checkpoints: ``NAME.safetensors`` (weights + an ``edgekd`` JSON metadata document).

Never unpickles code: edgekd files are safetensors; third-party ``.pt/.pth`` state dicts load
with ``torch.load(weights_only=True)`` and need the architecture named (``--arch``).
Training state for resuming lives beside the weights in ``NAME.train_state.pt`` (tensors and
plain containers only, so it too loads with ``weights_only=True``).
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models import Normalization, create_model

FORMAT_VERSION = 1


class CheckpointError(EdgekdError):
    pass


@dataclass
class CheckpointMeta:
    """The ``edgekd`` metadata document of DESIGN.md."""

    arch: str
    num_classes: int
    class_names: list[str]
    ignore_index: int
    input_size: list[int]  # [H, W]
    mean: list[float]
    std: list[float]
    channel_order: str = "RGB"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    params: int = 0
    trained_with: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # A compressed model: how to rebuild its shape from the base architecture (edgekd.prune.structure).
    structure: dict[str, Any] | None = None
    # Where the weights started: {"path", "sha256", "arch"} of the checkpoint a fine-tune began from.
    init: dict[str, Any] | None = None
    format_version: int = FORMAT_VERSION

    @property
    def normalization(self) -> Normalization:
        return Normalization(tuple(self.mean), tuple(self.std), self.channel_order)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckpointMeta":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise CheckpointError(f"checkpoint metadata has unknown keys {sorted(unknown)}; written by a newer edgekd?")
        return cls(**d)


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def atomic_write(path: Path, write) -> None:
    """Write via a temporary file in the same folder and rename, so nothing is half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | os.PathLike, model: nn.Module, meta: CheckpointMeta) -> Path:
    """Save weights + metadata as safetensors. Returns the path written."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint path {str(path)!r} must end in .safetensors")
    meta.params = count_params(model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"edgekd": json.dumps(asdict(meta))}))
    return path


def read_meta(path: str | os.PathLike) -> CheckpointMeta:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("edgekd")
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file without edgekd metadata; pass --arch to load it as plain weights")
    return CheckpointMeta.from_dict(json.loads(raw))


def _load_third_party_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} refused: it is a pickle that would run code or build non-tensor objects ({str(err).splitlines()[0]}). "
            "Re-save it as a plain state dict (torch.save(model.state_dict(), ...)) or as safetensors."
        ) from err
    for key in ("model", "state_dict", "model_state_dict", "net"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors (found {type(obj).__name__})")
    prefix = "module."
    if all(k.startswith(prefix) for k in obj):
        obj = {k[len(prefix):]: v for k, v in obj.items()}
    return obj


def _summarize_keys(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown} (+{len(keys) - limit} more)" if len(keys) > limit else shown


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load with strict key and shape matching; a mismatch names the keys that differ."""
    own = model.state_dict()
    state = dict(state)
    for key in own:  # files from PyTorch < 0.4 carry no BatchNorm step counters; they hold no weights
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(own[key])
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shape = [f"{k} {tuple(state[k].shape)}≠{tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_summarize_keys(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_summarize_keys(unexpected)}")
        if shape:
            parts.append(f"{len(shape)} shape mismatches: {_summarize_keys(shape, 3)}")
        raise CheckpointError(f"{source} does not fit architecture {type(model).__name__}: " + "; ".join(parts) + ". Is --arch right?")
    model.load_state_dict(state, strict=True)


def load_checkpoint(
    path: str | os.PathLike, *, arch: str | None = None, num_classes: int | None = None, **arch_kwargs
) -> tuple[nn.Module, CheckpointMeta]:
    """Load an edgekd checkpoint, or a third-party state dict when ``arch`` is given.

    For third-party files the metadata is made from the model's own defaults (its normalisation,
    CamVid-like class count unless ``num_classes`` says otherwise).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors" and arch is None:
        from safetensors.torch import load_file

        meta = read_meta(path)
        model = build_model(meta)
        source = str(path) if meta.structure is None else f"{path} (pruned: its structure plan replayed on {meta.arch})"
        load_state_strict(model, load_file(str(path)), source)
        return model.eval(), meta
    if arch is None:
        raise CheckpointError(f"{path} is not an edgekd checkpoint (.safetensors); name its architecture with --arch")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = _load_third_party_state(path)
    model = create_model(arch, num_classes=num_classes or _guess_num_classes(arch, state), **arch_kwargs)
    load_state_strict(model, state, str(path))
    norm: Normalization = getattr(model, "normalization")
    meta = CheckpointMeta(
        arch=arch, num_classes=model.num_classes, class_names=[f"class{i}" for i in range(model.num_classes)],
        ignore_index=255, input_size=[360, 480], mean=list(norm.mean), std=list(norm.std),
        channel_order=norm.channel_order, arch_kwargs=dict(arch_kwargs), params=count_params(model),
        trained_with={"method": "imported", "source": path.name, "source_sha256": sha256_file(path)},
    )
    return model.eval(), meta


def build_model(meta: CheckpointMeta) -> nn.Module:
    """The untrained network a checkpoint's weights fit: the base architecture, then its pruning plan."""
    model = create_model(meta.arch, num_classes=meta.num_classes, **meta.arch_kwargs)
    if meta.structure is not None:
        from edgekd.prune.structure import apply_structure

        apply_structure(model, meta.structure)
    return model


def _guess_num_classes(arch: str, state: dict[str, torch.Tensor]) -> int:
    """The class count of a foreign state dict: the out-channels of its last conv weight."""
    convs = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 4]
    if not convs:
        raise CheckpointError(f"cannot infer the class count of this {arch} state dict; pass --num-classes")
    return int(convs[-1].shape[0])


def save_train_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)
