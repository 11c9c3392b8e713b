"""PyTorch → ONNX, once per checkpoint, shared by the ONNX-based backends.

Exporter choice, measured on the zoo students at 360×480 (docs/export.md): the TorchScript
exporter (``dynamo=False``, opset 17) and the dynamo exporter (opset 20) give graphs of the
same size once onnxslim has folded the TorchScript shape arithmetic (lraspp_mobilenetv3_small:
180 → 128 nodes vs 128; fast_scnn: 175 → 97 vs 97; outputs equal to 1e-12), but opset 17 is
what older converters accept (TensorRT 8.x, still on JetPack 5, parses opsets ≤ 17; the opset-20
``Resize`` carries ``antialias``/``keep_aspect_ratio_policy``), the dynamo exporter cannot
target 17, and TorchScript export is ~10× faster. So TorchScript + onnxslim is the default and
``exporter="dynamo"`` (weights embedded, ``external_data=False``) is one option away; the
manifest records which one ran and the opset. Every graph is checked with ``onnx.checker``.
"""
from __future__ import annotations

import contextlib
import io
import re
import warnings
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = {"dynamo": 20, "torchscript": 17}

_OP_PATTERNS = (
    r"(aten::[\w.]+)", r"(torch\.ops\.aten\.[\w.]+)", r"(aten\.[\w.]+)", r"operator '?([\w:.]+)'?", r"\bop '([\w:.]+)'",
    r"node '?([\w/.:]+)'?", r"[Oo]p ?type:? '?([\w:.]+)'?",
)


class ConverterError(EdgekdError):
    """A converter refused the model; the message names the op or node and what to try."""


def offending_op(message: str) -> str:
    """The op or node name a converter's error message points at, or ``"unknown op"``."""
    node = re.search(r"translating node %([\w.]+)", message)
    for pattern in _OP_PATTERNS:
        match = re.search(pattern, message)
        if match:
            return f"node {node.group(1)} ({match.group(1)})" if node else match.group(1)
    return f"node {node.group(1)}" if node else "unknown op"


def _chain(err: BaseException) -> list[BaseException]:
    """The exception and its causes, outermost first (exporters wrap the specific error)."""
    chain, seen = [], set()
    while err is not None and id(err) not in seen:
        chain.append(err)
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return chain


def _first_line(err: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip() or type(err).__name__
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def converter_error(converter: str, err: BaseException, fix: str) -> ConverterError:
    """One line: which converter, which op/node, its most specific message, and the fix."""
    chain = _chain(err)
    full = "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", str(e)) for e in chain)
    first = _first_line(chain[-1])
    return ConverterError(f"{converter} rejected the model at {offending_op(full)}: {first[:300]} — {fix}")


def _dynamo_export(model: Any, example: Any, path: Path, opset: int, dynamic_batch: bool) -> None:
    import torch

    dynamic_shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic_batch else None
    torch.onnx.export(
        model, (example,), str(path), dynamo=True, external_data=False, opset_version=opset,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_shapes=dynamic_shapes, verbose=False,
    )


def _torchscript_export(model: Any, example: Any, path: Path, opset: int, dynamic_batch: bool) -> None:
    import torch

    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(
        model, (example,), str(path), dynamo=False, opset_version=opset,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], dynamic_axes=axes,
    )


def export_onnx(
    model: Any, input_size: tuple[int, int], path: Path, *, dynamic_batch: bool = False,
    exporter: str = "torchscript", opset: int | None = None, simplify: bool = True,
) -> dict[str, Any]:
    """Write ``model`` as one self-contained ONNX file; return what the manifest records about it."""
    import onnx
    import torch

    if exporter not in EXPORTERS:
        from edgekd.backends.registry import nearest

        raise EdgekdError(f"unknown ONNX exporter {exporter!r}{nearest(exporter, list(EXPORTERS))}; use one of {', '.join(EXPORTERS)}")
    opset = opset or DEFAULT_OPSET[exporter]
    example = torch.zeros(1, 3, *input_size)
    export = _dynamo_export if exporter == "dynamo" else _torchscript_export
    other = "torchscript" if exporter == "dynamo" else "dynamo"
    try:
        with contextlib.redirect_stdout(io.StringIO()), torch.no_grad(), warnings.catch_warnings():
            # chosen deliberately (see above): the legacy-exporter deprecation and the tracer's
            # "shape comparison becomes a constant" notes (static H×W) are expected here
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            export(model.eval(), example, path, opset, dynamic_batch)
    except Exception as err:  # the exporters raise many types; all mean "cannot convert this model"
        raise converter_error(f"torch.onnx.export ({exporter}, opset {opset})", err,
                              f"try --exporter {other}, or replace that op in the model") from err
    graph = onnx.load(str(path))
    info = {"exporter": f"torch.onnx.export(dynamo={exporter == 'dynamo'})", "opset": _opset(graph),
            "nodes_exported": len(graph.graph.node), "input_name": INPUT_NAME, "output_name": OUTPUT_NAME}
    if simplify:
        graph = _slim(graph, path)
        info["simplifier"] = "onnxslim"
    info["nodes"] = len(graph.graph.node)
    info["op_types"] = sorted({n.op_type for n in graph.graph.node})
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:
        raise converter_error("onnx.checker", err, "report this model; the exported graph is invalid") from err
    return info


def _opset(graph: Any) -> int:
    return next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))


def _slim(graph: Any, path: Path) -> Any:
    """Simplify with onnxslim (constant folding, fusing the shape arithmetic around Resize)."""
    import onnx
    import onnxslim

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            slimmed = onnxslim.slim(graph)
    except Exception as err:
        raise converter_error("onnxslim", err, "re-run with simplification off (export option onnx_simplify=False)") from err
    onnx.save(slimmed, str(path))
    return slimmed
