"""What one bench cell measures: the typed spec the runner builds and the worker process reads.

The spec crosses a process boundary (a local worker, or one on a remote device over ssh), so it
travels as JSON: ``CellSpec.to_json()`` on the runner's side, ``CellSpec.from_json(text)`` in the
worker. ``from_json`` refuses an unknown key or a value of the wrong type with one line naming the
key, so a runner/worker mismatch fails the cell plainly instead of measuring with a default.
Standard library plus ``edgekd.core.timing`` only: the worker must stay light (no PyTorch).
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from edgekd.core.suggest import did_you_mean
from edgekd.core.timing import LoopPolicy, WarmupPolicy
from edgekd.errors import EdgekdError

MODES = ("cell", "accuracy")


@dataclass(frozen=True)
class AccuracySpec:
    """mIoU of the artifact on ``split`` of the dataset folder ``data`` (a path on the worker's machine)."""

    data: str
    split: str = "val"
    limit: int | None = None


@dataclass(frozen=True)
class E2ESpec:
    """Camera frame to overlay, frames back to back for ``duration_s``."""

    duration_s: float


@dataclass(frozen=True)
class PacedSpec:
    """Frames at the camera's rate: how many miss ``deadline_ms``."""

    target_fps: float
    deadline_ms: float
    duration_s: float


@dataclass(frozen=True)
class SustainedSpec:
    """A long run cut into windows of ``window_s`` (throttling, memory growth, temperature)."""

    seconds: float
    window_s: float


@dataclass(frozen=True)
class SensorSpec:
    """Which of the device's sensors the worker reads (a spec without them reads none)."""

    tegrastats: bool = False
    tegrastats_interval_ms: int = 100
    rapl: bool = False
    thermal_zones: bool = False


@dataclass(frozen=True)
class CellSpec:
    """One cell (``mode="cell"``) or the FP32 reference accuracy of one artifact (``mode="accuracy"``).

    ``None`` for ``e2e``, ``paced``, ``sustained`` and ``accuracy`` means "not measured";
    ``throughput_s`` 0 skips pipelined throughput."""

    artifact_dir: str
    mode: str = "cell"
    backend: str | None = None
    runtime_options: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] | None = None
    camera_hw: tuple[int, int] | None = None
    timing: LoopPolicy = LoopPolicy()
    warmup: WarmupPolicy = WarmupPolicy()
    e2e: E2ESpec | None = None
    paced: PacedSpec | None = None
    throughput_s: float = 0.0
    sustained: SustainedSpec | None = None
    sensors: SensorSpec = SensorSpec()
    accuracy: AccuracySpec | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise EdgekdError(f"cell spec: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.mode == "accuracy" and self.accuracy is None:
            raise EdgekdError("cell spec: mode 'accuracy' needs an 'accuracy' block (data, split, limit)")

    def to_json(self) -> str:
        """Every field spelled out, tuples as lists: what ``from_json`` reads back into an equal spec."""
        return json.dumps(dataclasses.asdict(self), allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CellSpec":
        """A spec from plain data; missing keys take their defaults, unknown or mistyped ones raise."""
        return _build(cls, data, "cell spec")

    @classmethod
    def from_json(cls, text: str) -> "CellSpec":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise EdgekdError(f"cell spec: not JSON ({err.msg} at line {err.lineno} column {err.colno})") from None
        return cls.from_dict(data)


def _build(cls: type, data: Any, where: str) -> Any:
    """``cls(**data)`` with every key checked against the dataclass's fields and their types."""
    if not isinstance(data, dict):
        raise EdgekdError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in names:
            raise EdgekdError(f"{where}: unknown key {key!r}; known keys: {', '.join(names)}."
                              + did_you_mean(str(key), names))
        kwargs[key] = _convert(value, hints[key], f"{where}: {key!r}")
    required = [f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in kwargs]
    if missing:
        raise EdgekdError(f"{where}: missing key {missing[0]!r}")
    return cls(**kwargs)


def _convert(value: Any, hint: Any, where: str) -> Any:
    """``value`` as type ``hint`` (the few shapes the spec uses), or an error naming the key."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, where)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise EdgekdError(f"{where} must be a list of {len(args)} {args[0].__name__}s, got {value!r}")
        return tuple(_convert(v, a, where) for v, a in zip(value, args))
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise EdgekdError(f"{where} must be an object with string keys, got {value!r}")
        return dict(value)
    ok = {bool: isinstance(value, bool), str: isinstance(value, str),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool)}[hint]
    if not ok:
        raise EdgekdError(f"{where} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    return float(value) if hint is float else value
