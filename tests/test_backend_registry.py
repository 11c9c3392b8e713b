"""The backend registry: loud lookups, no runtime imported until used, missing runtimes name the pip extra."""
from __future__ import annotations

import subprocess
import sys

import pytest

from edgekd.backends.base import Backend, BackendUnavailable
from edgekd.backends.registry import UnknownBackendError, get_backend, list_backends


def test_names_and_instances():
    assert list_backends() == ["torch", "onnxruntime", "openvino", "coreml", "tensorrt", "litert", "executorch"]
    for name in list_backends():
        backend = get_backend(name)
        assert isinstance(backend, Backend) and backend.name == name and backend is get_backend(name)
        assert set(backend.precisions) <= {"fp32", "fp16", "int8"}


def test_unknown_name_lists_the_valid_ones_and_the_nearest():
    with pytest.raises(UnknownBackendError, match="unknown backend 'tensor_rt' \\(did you mean 'tensorrt'\\?\\); valid backends: torch, "):
        get_backend("tensor_rt")


def test_importing_registry_and_export_pulls_in_no_runtime():
    code = ("import sys, edgekd.backends.registry, edgekd.export, edgekd.parity; "
            "print(sorted(m for m in ('onnxruntime', 'openvino', 'nncf', 'coremltools', 'tensorrt', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@pytest.mark.parametrize("backend, module, extra, call", [
    ("openvino", "openvino", "pip install 'edgekd[openvino]'", lambda b: b.load("/nonexistent")),
    ("coreml", "coremltools", "pip install 'edgekd[coreml]'", lambda b: b.version()),  # load says "needs macOS" first
    ("tensorrt", "tensorrt", "pip install 'edgekd[tensorrt]'", lambda b: b.load("/nonexistent")),
])
def test_a_missing_runtime_names_the_pip_extra(monkeypatch, backend, module, extra, call):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    available, reason = get_backend(backend).is_available()
    assert not available and extra in reason
    with pytest.raises(BackendUnavailable, match=extra.replace("[", "\\[").replace("]", "\\]")):
        call(get_backend(backend))


def test_each_backend_maps_profile_runtime_options_it_declares():
    # the backend owns its knowledge: a profile's runtime block becomes options its load() declares
    from edgekd.backends.registry import get_backend, list_backends
    from edgekd.profiles import RuntimeOptions

    full = RuntimeOptions(threads=2, openvino_hint="latency", openvino_inference_precision="f32",
                          tensorrt_workspace_mb=256, tensorrt_dla_core=0, coreml_compute_units="CPU_ONLY",
                          denormals_as_zero=True)
    mapped = {}
    for name in list_backends():
        backend = get_backend(name)
        opts = backend.options_from_profile(full)
        assert set(opts) <= set(backend.runtime_options), (name, opts)
        assert backend.options_from_profile(RuntimeOptions()) == {}
        mapped[name] = opts
    assert mapped["openvino"]["performance_hint"] == "LATENCY"
    assert mapped["torch"] == {"threads": 2, "flush_denormal": True}
    assert mapped["tensorrt"] == {"workspace_mb": 256, "dla_core": 0}
    assert mapped["coreml"] == {"compute_units": "CPU_ONLY"}
