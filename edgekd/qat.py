"""Quantisation-aware training state: NNCF fake quantisers on a PyTorch student, saved as plain data.

``prepare`` calibrates NNCF's PyTorch quantisers on real images (``nncf.quantize`` on the torch
model: INT8 per-channel symmetric weights, per-tensor activations, the placement OpenVINO and
ONNX Runtime fuse) and returns the same module with fake-quantise hooks in its ``forward``, ready
to fine-tune. A checkpoint stays safetensors-only: the quantisers' scales are tensors of the
state dict (keys under ``__nncf_hooks``) and their placement is NNCF's JSON config
(``nncf.torch.get_config``) in the checkpoint metadata (``quantization``); ``restore`` replays
the config on the freshly built network before the weights load, so nothing is unpickled.

Fake quantisers sit on ``forward`` only, so a QAT student is trained and evaluated through
``forward`` (logits); feature losses, which call ``forward_features``, would bypass them.

This module is on the ground floor: it imports only torch, numpy and (lazily) NNCF.
"""
from __future__ import annotations

import copy
import json
import os
from typing import Any, Iterable

import torch
from torch import nn

from edgekd.errors import EdgekdError

FORMAT = "nncf-torch-qat"
HOOK_PREFIX = "__nncf_hooks"
#: NNCF compiles its CPU fake-quantise kernels (a torch C++ extension, cached in ~/.cache/torch_extensions)
#: on first use and gives up after 60 s; on a loaded 2-core machine the compile takes longer than that.
EXTENSION_TIMEOUT_S = "900"


def _nncf():
    try:
        import nncf
        import nncf.torch  # noqa: F401  (registers the torch backend)
    except ImportError as err:
        raise EdgekdError(f"quantisation-aware training needs NNCF ({err}); pip install 'edgekd[openvino]'") from err
    return nncf


def prepare(model: nn.Module, images: Iterable[torch.Tensor], *, num_images: int) -> nn.Module:
    """Fake-quantised ``model`` (in place), its ranges initialised from ``images`` (normalised N×3×H×W)."""
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", EXTENSION_TIMEOUT_S)
    nncf = _nncf()
    from nncf.torch.extensions import ExtensionLoaderTimeoutException

    model.eval()
    batches = list(images)
    if not batches:
        raise EdgekdError("quantisation-aware training needs calibration images to initialise the quantiser ranges")
    try:
        quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=num_images,
                                  preset=nncf.QuantizationPreset.PERFORMANCE)
    except ExtensionLoaderTimeoutException as err:
        raise EdgekdError(f"NNCF could not build its CPU quantisation kernels within {os.environ['NNCF_EXTENSION_LOAD_TIMEOUT']} s; "
                          "set NNCF_EXTENSION_LOAD_TIMEOUT=0 (no limit) and retry, after removing a stale lock left by an interrupted "
                          "build (~/.cache/torch_extensions/*/nncf/quantized_functions_cpu)") from err
    return quantized.train()


def record(model: nn.Module, *, calib_images: int) -> dict[str, Any]:
    """The checkpoint metadata block that lets ``restore`` rebuild the quantisers (JSON only)."""
    nncf = _nncf()
    config = nncf.torch.get_config(model)
    json.dumps(config)  # must be plain data: it goes into the safetensors header
    return {"format": FORMAT, "tool": f"nncf {nncf.__version__}", "nncf_config": config, "calibration_images": calib_images,
            "weights": "int8 symmetric per-channel", "activations": "int8 per-tensor (NNCF performance preset)",
            "scales": f"state dict keys {HOOK_PREFIX}.*"}


def is_qat(quantization: dict[str, Any] | None) -> bool:
    return bool(quantization) and quantization.get("format") == FORMAT


def restore(model: nn.Module, quantization: dict[str, Any]) -> nn.Module:
    """Replay the recorded quantiser placement on a freshly built ``model`` (weights load after)."""
    if not is_qat(quantization):
        raise EdgekdError(f"checkpoint quantization block has format {quantization.get('format')!r}; this edgekd reads {FORMAT!r}")
    nncf = _nncf()
    return nncf.torch.load_from_config(model, quantization["nncf_config"])


def float_copy(model: nn.Module, builder) -> nn.Module:
    """The same weights without quantisers: ``builder()`` gives a fresh network, hook tensors are dropped."""
    plain = builder()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(HOOK_PREFIX)}
    plain.load_state_dict(state, strict=True)
    return plain.eval()


def export_qdq_onnx(model: nn.Module, path, input_size: tuple[int, int], *, input_name: str, output_name: str,
                    opset: int = 17) -> None:
    """ONNX with QuantizeLinear/DequantizeLinear pairs holding the trained scales (what ORT and OpenVINO run as INT8)."""
    from nncf.torch.quantization.layers import BaseQuantizer, QuantizerExportMode

    qmodel = copy.deepcopy(model).eval()
    for module in qmodel.modules():
        if isinstance(module, BaseQuantizer):
            module.set_export_mode(QuantizerExportMode.ONNX_QUANTIZE_DEQUANTIZE_PAIRS)
    x = torch.zeros(1, 3, *input_size)
    with torch.no_grad():
        torch.onnx.export(qmodel, (x,), str(path), opset_version=opset, dynamo=False, input_names=[input_name],
                          output_names=[output_name], do_constant_folding=True)
