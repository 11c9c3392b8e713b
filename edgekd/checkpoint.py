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
import warnings
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
    """The ``edgekd`` metadata document stored with the weights (docs/design.md, "Checkpoints")."""

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
    # A compressed model: how to rebuild its shape from the base architecture (edgekd.models.structure).
    structure: dict[str, Any] | None = None
    # Where the weights started: {"path", "sha256", "arch"} of the checkpoint a fine-tune began from.
    init: dict[str, Any] | None = None
    # Quantisation-aware training: fake-quantiser placement (NNCF config, JSON); scales are state-dict tensors.
    quantization: dict[str, Any] | None = None
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
    state, seen = {}, set()
    for k, v in model.state_dict().items():
        v = v.detach().contiguous().cpu()
        if v.numel() and v.data_ptr() in seen:  # a shared tensor (e.g. one quantiser on two hooks): safetensors wants copies
            v = v.clone()
        seen.add(v.data_ptr())
        state[k] = v
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"edgekd": json.dumps(asdict(meta))}))
    return path


_SAFETENSORS_FIX = "re-copy or re-save it (a file cut short by a failed copy or a full disk reads like this)"


def _check_safetensors_file(path: Path) -> None:
    """Refuse what is not a whole safetensors file before the library reads it, naming what it is instead.

    A safetensors file is an 8-byte little-endian header length, a JSON header of that length
    and the tensor bytes the header's offsets cover; anything else (an empty file, a pickle or zip
    renamed ``.safetensors``, a file cut short) gets a one-line error instead of the library's
    ``header too large`` / ``unexpected EOF``.
    """
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint {path} is an empty file (0 bytes); {_SAFETENSORS_FIX}")
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"checkpoint {path} is {size} bytes, too short to be safetensors; {_SAFETENSORS_FIX}")
        header_len = int.from_bytes(head, "little")
        fits = header_len <= size - 8 and header_len <= 100 * 1024 * 1024
        # (a header length may start with byte 0x80 too: name the file a pickle only when the length does not fit)
        if not fits and (head[:2] == b"PK" or head[:1] == b"\x80"):
            kind = "a zip (torch.save)" if head[:2] == b"PK" else "a pickle"
            raise CheckpointError(f"checkpoint {path} is {kind} file named .safetensors; rename it to .pt and pass --arch "
                                  "(it is then read with weights_only=True), or convert it to safetensors")
        if not fits:
            raise CheckpointError(f"checkpoint {path} is not a safetensors file (its first 8 bytes do not give a header "
                                  f"length that fits in its {size} bytes); pass an edgekd .safetensors checkpoint, or {_SAFETENSORS_FIX}")
        try:
            header = json.loads(f.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CheckpointError(f"checkpoint {path} has a corrupt safetensors header ({err}); {_SAFETENSORS_FIX}") from err
    if not isinstance(header, dict):
        raise CheckpointError(f"checkpoint {path} has a corrupt safetensors header (not a JSON object); {_SAFETENSORS_FIX}")
    ends = [int(v["data_offsets"][1]) for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list) and len(v["data_offsets"]) == 2]
    needed = 8 + header_len + max(ends, default=0)
    if size < needed:
        raise CheckpointError(f"checkpoint {path} is truncated: {size} bytes, its header describes {needed}; {_SAFETENSORS_FIX}")


def _open_safetensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and the metadata of a checked safetensors file; any read failure is a CheckpointError."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    _check_safetensors_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read as safetensors ({_first_line(err)}); {_SAFETENSORS_FIX}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines() or [type(err).__name__])[0][:200] or type(err).__name__


def read_meta(path: str | os.PathLike) -> CheckpointMeta:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    _check_safetensors_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("edgekd")
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read as safetensors ({_first_line(err)}); {_SAFETENSORS_FIX}") from err
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file without edgekd metadata; pass --arch to load it as plain weights")
    try:
        return CheckpointMeta.from_dict(json.loads(raw))
    except (json.JSONDecodeError, TypeError) as err:
        raise CheckpointError(f"{path} has corrupt edgekd metadata ({err}); re-save the checkpoint") from err


def _pickle_reason(err: BaseException) -> str:
    """What torch's weights-only unpickler objected to, without its advice to turn the protection off."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    advice = ("weights_only", "Weights only load failed", "Re-running", "documentation", "trusted source", "torch.serialization")
    useful = [line for line in lines if not any(a in line for a in advice)]
    return (useful[0] if useful else "it holds objects other than tensors")[:200]


def _torch_load_weights(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)`` with every failure turned into one line that never says how to bypass it."""
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is an empty file (0 bytes); re-copy or re-save it")
    fix = ("delete it (training then starts afresh) or resume from a train state written by edgekd" if what == "train state"
           else "Re-save it as a plain state dict (torch.save(model.state_dict(), ...)) or as safetensors")
    try:
        with warnings.catch_warnings():  # the unpickler's protocol notice is noise beside the refusal
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{what} {path} refused: it is a pickle that would run code or build non-tensor objects ({_pickle_reason(err)}). "
            f"{fix}."
        ) from None
    except (EOFError, OSError, RuntimeError, ValueError, KeyError, AttributeError, IndexError) as err:
        raise CheckpointError(f"{what} {path} cannot be read by torch.load ({type(err).__name__}: {_first_line(err)}): "
                              "it is truncated, corrupt or not a PyTorch file; re-copy or re-save it") from None


def _load_third_party_state(path: Path) -> dict[str, torch.Tensor]:
    obj = _torch_load_weights(path, "checkpoint")
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
        meta = read_meta(path)
        model = build_model(meta)
        state = _open_safetensors(path)[0]
        if meta.structure is None:
            load_state_strict(model, state, str(path))
        else:
            _load_pruned(model, state, path, meta.arch)
        return model.eval(), meta
    if arch is None:
        raise CheckpointError(f"{path} is not an edgekd checkpoint (.safetensors); name its architecture with --arch")
    if path.suffix == ".safetensors":
        state = _open_safetensors(path)[0]
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


def _load_pruned(model: nn.Module, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Strict load of a pruned checkpoint; a mismatch means its plan and its weights disagree."""
    try:
        load_state_strict(model, state, f"{path} (pruned)")
    except CheckpointError as err:
        detail = str(err).split(": ", 1)[-1].removesuffix(". Is --arch right?")
        raise CheckpointError(f"pruned checkpoint {path}: its pruning plan replayed on {arch} does not match its weights "
                              f"({detail}); nothing was loaded — re-run edgekd prune to rewrite it") from None


def build_model(meta: CheckpointMeta) -> nn.Module:
    """The untrained network a checkpoint's weights fit: the base architecture, then its pruning plan."""
    model = create_model(meta.arch, num_classes=meta.num_classes, **meta.arch_kwargs)
    if meta.structure is not None:  # written by `edgekd prune`: replayed without torch-pruning (edgekd.models.structure)
        from edgekd.models.structure import apply_structure

        apply_structure(model, meta.structure)
    if meta.quantization is not None:  # a QAT checkpoint: replay the fake quantisers, then its scales load as weights
        from edgekd.qat import restore

        model = restore(model, meta.quantization)
    return model


def _guess_num_classes(arch: str, state: dict[str, torch.Tensor]) -> int:
    """The class count of a foreign state dict: the out-channels of its last conv weight."""
    convs = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 4]
    if not convs:
        raise CheckpointError(f"cannot infer the class count of this {arch} state dict; pass --num-classes")
    return int(convs[-1].shape[0])


def refuse_overwrite(out: str | os.PathLike, *, force: bool, resume: bool) -> None:
    """``--out`` naming an existing checkpoint is refused unless ``--force`` (replace) or ``--resume`` (continue)."""
    out = Path(out)
    if out.exists() and not (force or resume):
        raise CheckpointError(f"--out {out} exists; pass --force to overwrite it, --resume to continue its training, "
                              "or choose another --out")


def save_train_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_train_state(path: str | os.PathLike) -> dict[str, Any]:
    """The resume state beside a checkpoint; a file that is not plain tensors and containers is refused."""
    state = _torch_load_weights(Path(path), "train state")
    if not isinstance(state, dict):
        raise CheckpointError(f"train state {path} holds a {type(state).__name__}, not a dict; delete it to start afresh")
    return state
