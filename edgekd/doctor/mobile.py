"""LiteRT / ExecuTorch constraints the doctor can check from the exported graph.

Both runtimes run a phone's CPU path through XNNPACK; an op XNNPACK does not take falls back to the
runtime's own reference (LiteRT built-in) or portable (ExecuTorch) kernels, which are single-threaded
and unvectorised on the phone too, and splits the graph into several delegate partitions with copies
between them. Dynamic input dimensions make the runtime re-plan (LiteRT: ``ResizeInputTensor`` +
re-allocation; ExecuTorch: upper-bounded shapes) while an AR pipeline feeds one fixed crop.

Facts come from the runtime file itself where the runtime is installed (the ``.tflite``'s
interpreter nodes, the ``.pte``'s method metadata), else from the manifest export wrote, and for a
checkpoint from lowering its ``torch.export`` graph with the XNNPACK partitioner here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.doctor.findings import Finding

MOBILE_BACKENDS = ("litert", "executorch")
# Ops that are bookkeeping, not compute: their fallback costs nothing worth a warning.
_BOOKKEEPING = ("getitem", "dim_order_ops", "alloc", "quantized_decomposed.quantize", "quantized_decomposed.dequantize",
                "QUANTIZE", "DEQUANTIZE")


def compute_fallbacks(delegation: dict[str, Any]) -> dict[str, int]:
    """Op type → count of compute ops left outside the delegate (bookkeeping ops excluded)."""
    return {op: v["not_delegated"] for op, v in (delegation.get("by_op") or {}).items()
            if v.get("not_delegated") and not op.startswith(_BOOKKEEPING)}


def check_delegation(delegation: dict[str, Any] | None, backend: str, device: str | None) -> list[Finding]:
    """Ops XNNPACK did not take (warning), or no delegation at all (error)."""
    if not delegation:
        return [Finding("info", "check-skipped", f"no delegation record for this {backend} graph",
                        "ops left to the runtime's reference kernels would go unnoticed",
                        f"re-export with edgekd export --backend {backend}", device=device)]
    if not delegation.get("delegated_nodes"):
        return [Finding("error", "xnnpack-nothing-delegated", f"XNNPACK took none of the {delegation.get('total_nodes')} ops",
                        "the whole model runs on reference kernels: several times slower on the phone",
                        "check the runtime was built with XNNPACK, and export fp32 or int8 (XNNPACK's types)", device=device)]
    fallbacks = compute_fallbacks(delegation)
    if not fallbacks:
        return []
    listed = ", ".join(f"{op} ×{n}" for op, n in sorted(fallbacks.items()))
    return [Finding("warning", "xnnpack-op-fallback",
                    f"{sum(fallbacks.values())} op(s) not delegated to XNNPACK ({backend}): {listed}; "
                    f"{delegation.get('partitions')} delegate partition(s)",
                    "these run on single-threaded reference kernels and split the graph, with copies between partitions",
                    _fallback_fix(fallbacks), device=device,
                    details={"ops": fallbacks, "partitions": delegation.get("partitions"),
                             "delegated_nodes": delegation.get("delegated_nodes"), "total_nodes": delegation.get("total_nodes")})]


def _fallback_fix(fallbacks: dict[str, int]) -> str:
    if any("avg_pool2d" in op or op == "AVERAGE_POOL_2D" for op in fallbacks):
        return ("XNNPACK's average pooling takes neither count_include_pad=True with padding>0 nor ceil_mode=True: use "
                "AvgPool2d(..., count_include_pad=False), or pad explicitly then pool with padding=0; check parity after")
    return "replace those ops with ones XNNPACK supports (see the delegate's op list), or accept the fallback cost"


def check_fixed_shapes(inputs: list[dict[str, Any]], backend: str, device: str | None) -> list[Finding]:
    """Dynamic (-1 or symbolic) input dimensions: the runtime re-plans for each new shape."""
    dynamic = {i["name"]: i["shape"] for i in inputs if any(not isinstance(d, int) or d < 0 for d in i["shape"])}
    if not dynamic:
        return []
    return [Finding("warning", "mobile-dynamic-shape", f"{backend} input(s) with dynamic dimensions: {dynamic}",
                    "the runtime re-plans memory and XNNPACK re-packs on every shape change; a camera pipeline feeds one size",
                    "export at the device profile's input size (edgekd export --input-size HxW, fixed batch 1)",
                    device=device, details={"inputs": dynamic})]


def artifact_facts(folder: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
    """(delegation, inputs, where they came from) for a litert or executorch artifact."""
    backend = manifest["backend"]
    runtime_file = folder / str(manifest.get("runtime_file") or "")
    if backend == "litert" and runtime_file.is_file():
        try:
            from edgekd.backends.litert import delegation, graph_facts, make_interpreter

            return delegation(make_interpreter(runtime_file, threads=1)), graph_facts(runtime_file)["inputs"], "the .tflite"
        except Exception:  # noqa: BLE001 — the runtime missing here: fall back on the manifest
            pass
    if backend == "executorch" and runtime_file.is_file():
        inputs = _pte_inputs(runtime_file)
        if inputs is not None:
            return manifest.get("delegation"), inputs, "the .pte (delegation: manifest)"
    shape = manifest.get("input_shape") or []
    return manifest.get("delegation"), [{"name": "input", "shape": list(shape)}], "the manifest"


def _pte_inputs(path: Path) -> list[dict[str, Any]] | None:
    """Input tensor sizes of the .pte's ``forward`` from its method metadata (None without executorch)."""
    try:
        from edgekd.backends.executorch import _runtime

        meta = _runtime().load_program(path).metadata("forward")
        return [{"name": f"input_{i}", "shape": list(meta.input_tensor_meta(i).sizes())} for i in range(meta.num_inputs())]
    except Exception:  # noqa: BLE001
        return None


def check_artifact(folder: Path, manifest: dict[str, Any], device: str | None) -> list[Finding]:
    delegation, inputs, _source = artifact_facts(folder, manifest)
    return check_delegation(delegation, manifest["backend"], device) + check_fixed_shapes(inputs, manifest["backend"], device)


def check_checkpoint(model: Any, size: tuple[int, int], device: str | None) -> list[Finding]:
    """Lower the model's ``torch.export`` graph with the XNNPACK partitioner here and report its fallbacks."""
    import torch

    try:
        from edgekd.backends.executorch import lower
    except ImportError:
        lower = None
    try:
        if lower is None:
            raise ImportError("edgekd.backends.executorch")
        _, delegation = lower(model.eval(), (torch.zeros(1, 3, *size),), "xnnpack")
    except Exception as err:  # noqa: BLE001 — executorch missing or the export failing are findings, not crashes
        from edgekd.backends.base import BackendUnavailable

        if isinstance(err, (BackendUnavailable, ImportError)):
            return [Finding("info", "check-skipped", "executorch is not installed: the XNNPACK delegation check was skipped",
                            "ops XNNPACK cannot take would only show on the phone", "pip install 'edgekd[executorch]' and re-run",
                            device=device)]
        return [Finding("error", "torch-export-failed", f"torch.export / XNNPACK lowering at {size[0]}x{size[1]} failed: {err}",
                        "LiteRT (litert-torch) and ExecuTorch both start from torch.export", "replace that op", device=device)]
    return check_delegation(delegation, "xnnpack (LiteRT / ExecuTorch CPU)", device)
