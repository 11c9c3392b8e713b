"""Backend registry: names map to the module and class that implement them.

Lookups are loud (docs/design.md): an unknown name raises with the valid names and the nearest match.
Modules are imported on first use only, and they import their runtime lazily too, so importing
this registry never pulls in OpenVINO, coremltools or TensorRT.
"""
from __future__ import annotations

import importlib
from typing import Callable

from edgekd.backends.base import Backend
from edgekd.errors import EdgekdError
from edgekd.core.suggest import did_you_mean

_BACKENDS: dict[str, str] = {
    "torch": "edgekd.backends.torch:TorchBackend",
    "onnxruntime": "edgekd.backends.onnxruntime:OnnxRuntimeBackend",
    "openvino": "edgekd.backends.openvino:OpenVinoBackend",
    "coreml": "edgekd.backends.coreml:CoreMLBackend",
    "tensorrt": "edgekd.backends.tensorrt:TensorRTBackend",
    "litert": "edgekd.backends.litert:LiteRTBackend",
    "executorch": "edgekd.backends.executorch:ExecuTorchBackend",
}
_INSTANCES: dict[str, Backend] = {}


class UnknownBackendError(EdgekdError):
    pass


def list_backends() -> list[str]:
    """Every backend name edgekd knows, available here or not."""
    return list(_BACKENDS)


def backends_where(test: Callable[[Backend], bool]) -> list[str]:
    """Names of the backends ``test`` accepts (e.g. those that read an export option), in registry order:
    lists in help texts and errors come from the backends' own declarations, never a copy of them."""
    return [name for name in _BACKENDS if test(get_backend(name))]


def nearest(name: str, valid: list[str]) -> str:
    """`` (did you mean X?)`` for the closest valid name, or an empty string."""
    return did_you_mean(name, valid, template=" (did you mean {!r}?)", cutoff=0.5)


def get_backend(name: str) -> Backend:
    """The backend called ``name``; unknown names raise with the valid names and the nearest match."""
    if name not in _BACKENDS:
        raise UnknownBackendError(
            f"unknown backend {name!r}{nearest(name, list(_BACKENDS))}; valid backends: {', '.join(_BACKENDS)}"
        )
    if name not in _INSTANCES:
        module_name, _, class_name = _BACKENDS[name].partition(":")
        _INSTANCES[name] = getattr(importlib.import_module(module_name), class_name)()
    return _INSTANCES[name]
