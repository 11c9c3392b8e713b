"""A small, loud model registry (after timm/torchvision): duplicates raise, unknown names suggest."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from torch import nn

from edgekd.errors import EdgekdError
from edgekd.core.suggest import did_you_mean


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    role: str  # "student" or "teacher"
    family: str
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


class UnknownModelError(EdgekdError):
    pass


def register_model(name: str, *, role: str, family: str, description: str = ""):
    """Decorator that adds a builder ``f(*, num_classes, **kw) -> SegmentationModel``."""
    if role not in ("student", "teacher"):
        raise ValueError(f"role {role!r} must be 'student' or 'teacher'")

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice ({_REGISTRY[name].builder.__module__} and {builder.__module__})")
        _REGISTRY[name] = ModelEntry(name, builder, role, family, description or (builder.__doc__ or "").strip().split("\n")[0])
        return builder

    return wrap


def _ensure_zoo_loaded() -> None:
    importlib.import_module("edgekd.models.zoo")


def list_models(role: str | None = None) -> list[ModelEntry]:
    _ensure_zoo_loaded()
    return [e for n, e in sorted(_REGISTRY.items()) if role is None or e.role == role]


def _import_user_builder(spec: str) -> Callable[..., nn.Module]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UnknownModelError(f"cannot import module {module_name!r} for --arch {spec!r}: {err}") from err
    if not hasattr(module, attr):
        raise UnknownModelError(f"module {module_name!r} has no builder {attr!r} (--arch {spec!r})")
    return getattr(module, attr)


def get_builder(name: str) -> Callable[..., nn.Module]:
    """Builder for a zoo name, or for ``package.module:builder`` (any user model)."""
    if ":" in name:
        return _import_user_builder(name)
    _ensure_zoo_loaded()
    if name not in _REGISTRY:
        hint = did_you_mean(name, _REGISTRY, template="; did you mean {}?", cutoff=0.4, n=3)
        raise UnknownModelError(
            f"unknown model {name!r}{hint} Known: {', '.join(sorted(_REGISTRY))}; or pass package.module:builder"
        )
    return _REGISTRY[name].builder


def create_model(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """Build a model by registry name (or ``package.module:builder``)."""
    return get_builder(name)(num_classes=num_classes, **kwargs)
