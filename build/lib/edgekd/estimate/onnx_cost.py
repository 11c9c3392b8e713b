"""Per-node FLOPs and data moved, read from an ONNX graph after shape inference.

Conventions (stated so the figures can be checked by hand):

- FLOPs count a multiply-add as 2 (the convention of datasheet TFLOPS/TOPS figures):
  Conv = 2·N·C_out·H_out·W_out·(C_in/groups)·k_h·k_w (+ N·C_out·H_out·W_out with a bias),
  ConvTranspose = 2·N·C_in·H_in·W_in·(C_out/groups)·k_h·k_w (+ bias), MatMul = 2·M·K·N per batch,
  Gemm = 2·M·K·N (+ M·N with C). Element-wise ops cost a fixed number of FLOPs per output element
  (``_ELEMENTWISE``), pooling the window size per output, reductions one per input element,
  Resize 2 per interpolation tap (nearest 0, linear 2^d taps, cubic 4^d taps over d resized axes).
- Data moved is counted in *elements*, split into activations read, weights read (initializers and
  constants) and activations written, so a precision can price them (4 bytes FP32, 2 FP16/BF16,
  1 INT8). View ops (Reshape, Squeeze, Identity...) move nothing; copy ops (Concat, Slice,
  Transpose...) read and write their tensors and compute nothing.
- Fusion (``fuse=True``, the default): an element-wise op whose activation input comes from a
  Conv/ConvTranspose/Gemm/MatMul (or from an op already fused into one) with no other consumer
  runs in that producer's epilogue, as ONNX Runtime, OpenVINO and TensorRT all do: its FLOPs
  count, its memory traffic does not (other operands that are weights still count).
- Symbolic dimensions (a dynamic batch) are taken as 1 and listed in ``assumed_dims``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError

_ELEMENTWISE = {
    **dict.fromkeys(("Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "PRelu", "Clip", "Max", "Min", "Neg", "Abs", "Sqrt",
                     "Pow", "Where", "Equal", "Greater", "Less", "Not", "And", "Or", "Floor", "Ceil", "Round", "Sign",
                     "Reciprocal", "Mean", "Sum", "ThresholdedRelu", "Elu", "Selu", "Celu"), 1),
    **dict.fromkeys(("BatchNormalization", "HardSigmoid", "Softplus", "Softsign"), 2),
    "HardSwish": 3, "Sigmoid": 4, "Tanh": 4, "Exp": 4, "Log": 4, "Erf": 4, "Mish": 6, "Gelu": 8,
    **dict.fromkeys(("Softmax", "LogSoftmax"), 5),
    **dict.fromkeys(("InstanceNormalization", "LayerNormalization", "GroupNormalization"), 5),
}
_REDUCE = {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceL1", "ReduceProd", "ReduceSumSquare",
           "GlobalAveragePool", "GlobalMaxPool", "ArgMax", "ArgMin"}
_VIEW = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "Shape", "Size", "Constant",
         "ConstantOfShape", "QuantizeLinear", "DequantizeLinear", "Range"}
_COPY = {"Concat", "Slice", "Split", "Transpose", "Pad", "Gather", "GatherElements", "Tile", "Expand", "DepthToSpace",
         "SpaceToDepth", "Cast", "CastLike", "Upsample"}
_MATRIX = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass(frozen=True)
class NodeCost:
    name: str
    op_type: str
    flops: int
    act_in: int  # activation elements read
    weights: int  # weight/constant elements read
    act_out: int  # activation elements written
    fused: bool = False  # runs in its producer's epilogue: activation traffic not counted

    def bytes_moved(self, act_bytes: float, weight_bytes: float) -> float:
        acts = 0 if self.fused else (self.act_in + self.act_out)
        return acts * act_bytes + self.weights * weight_bytes


@dataclass
class GraphCost:
    nodes: list[NodeCost]
    input_shapes: dict[str, list[int]]
    weight_elements: int
    assumed_dims: list[str] = field(default_factory=list)
    uncosted_ops: list[str] = field(default_factory=list)  # op types priced by the generic rule

    @property
    def flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    def bytes_moved(self, act_bytes: float, weight_bytes: float) -> float:
        return sum(n.bytes_moved(act_bytes, weight_bytes) for n in self.nodes)


def _dims(type_proto: Any, assumed: set[str]) -> list[int] | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            assumed.add(d.dim_param or "?")
            dims.append(1)
    return dims


def load_graph(model_or_path: Any) -> Any:
    """An ``onnx.ModelProto`` from a path or a model (shape inference applied)."""
    import onnx

    model = onnx.load(str(model_or_path)) if isinstance(model_or_path, (str, Path)) else model_or_path
    try:
        return onnx.shape_inference.infer_shapes(model, data_prop=True)
    except Exception as err:  # onnx raises InferenceError and others; all mean "shapes unknown"
        raise EdgekdError(f"ONNX shape inference failed ({err}); export the graph with static shapes (edgekd export)") from err


def tensor_shapes(model: Any, assumed: set[str]) -> tuple[dict[str, list[int]], set[str]]:
    """Shapes of every named tensor, and the names that are weights (initializers, Constant outputs)."""
    g = model.graph
    shapes: dict[str, list[int]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        dims = _dims(vi.type, assumed)
        if dims is not None:
            shapes[vi.name] = dims
    weights = set()
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
        weights.add(init.name)
    for node in g.node:
        if node.op_type == "Constant":
            weights.update(node.output)
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(attr.t.dims)
    return shapes, weights


def _numel(shape: list[int] | None) -> int:
    return int(math.prod(shape)) if shape is not None else 0


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def node_flops(node: Any, shapes: dict[str, list[int]]) -> int | None:
    """FLOPs of one node by the conventions above; None when the op has no rule here."""
    op = node.op_type
    ins = [shapes.get(i) if i else None for i in node.input]
    out = shapes.get(node.output[0]) if node.output else None
    out_n = _numel(out)
    if op == "Conv" and ins[1] is not None and out is not None:
        w = ins[1]  # C_out × C_in/groups × k...
        macs = out_n * math.prod(w[1:])
        return 2 * macs + (out_n if len(ins) > 2 and ins[2] is not None else 0)
    if op == "ConvTranspose" and ins[0] is not None and ins[1] is not None:
        w = ins[1]  # C_in × C_out/groups × k...: every input pixel scatters into C_out/groups · k_h · k_w outputs
        macs = _numel(ins[0]) * w[1] * math.prod(w[2:])
        return 2 * macs + (out_n if len(ins) > 2 and ins[2] is not None else 0)
    if op == "MatMul" and ins[0] is not None and out is not None:
        return 2 * out_n * ins[0][-1]
    if op == "Gemm" and ins[0] is not None and out is not None:
        k = ins[0][0] if _attr(node, "transA", 0) else ins[0][-1]
        return 2 * out_n * k + (out_n if len(ins) > 2 and ins[2] is not None else 0)
    if op in _ELEMENTWISE:
        return _ELEMENTWISE[op] * out_n
    if op in ("MaxPool", "AveragePool", "LpPool"):
        return out_n * math.prod(_attr(node, "kernel_shape", [1]))
    if op in _REDUCE:
        return _numel(ins[0])
    if op == "Resize":
        return _resize_flops(node, ins[0], out)
    if op in _VIEW or op in _COPY:
        return 0
    return None


def _resize_flops(node: Any, src: list[int] | None, out: list[int] | None) -> int:
    if src is None or out is None:
        return 0
    resized = sum(1 for a, b in zip(src, out) if a != b)
    mode = _attr(node, "mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    taps = {"nearest": 0, "linear": 2 ** resized, "cubic": 4 ** resized}.get(mode, 2 ** resized)
    return 2 * taps * _numel(out)


def graph_cost(model_or_path: Any, *, fuse: bool = True) -> GraphCost:
    """Cost of every node of the graph (``fuse``: element-wise epilogues move no activations)."""
    model = load_graph(model_or_path)
    assumed: set[str] = set()
    shapes, weights = tensor_shapes(model, assumed)
    consumers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    producer: dict[str, str] = {}
    fused_outputs: set[str] = set()
    nodes, uncosted = [], set()
    for node in model.graph.node:
        flops = node_flops(node, shapes)
        if flops is None:
            uncosted.add(node.op_type)
            flops = _numel(shapes.get(node.output[0])) if node.output else 0
        act_inputs = [i for i in node.input if i and i not in weights]
        weight_inputs = [i for i in node.input if i and i in weights]
        view = node.op_type in _VIEW
        act_in = 0 if view else sum(_numel(shapes.get(i)) for i in act_inputs)
        act_out = 0 if view else sum(_numel(shapes.get(o)) for o in node.output if o)
        w = 0 if view else sum(_numel(shapes.get(i)) for i in weight_inputs)
        fused = fuse and _fusable(node, act_inputs, producer, fused_outputs, consumers)
        if fused:
            fused_outputs.update(node.output)
        for o in node.output:
            producer[o] = node.op_type
        nodes.append(NodeCost(node.name or node.output[0], node.op_type, int(flops), act_in, w, act_out, fused))
    inputs = {i.name: shapes.get(i.name, []) for i in model.graph.input if i.name not in weights}
    n_weights = sum(_numel(shapes.get(w)) for w in weights)
    return GraphCost(nodes, inputs, n_weights, sorted(assumed), sorted(uncosted))


def _fusable(node: Any, act_inputs: list[str], producer: dict[str, str], fused_outputs: set[str],
             consumers: dict[str, int]) -> bool:
    if node.op_type not in _ELEMENTWISE or node.op_type in ("Softmax", "LogSoftmax") or len(act_inputs) != 1:
        return False
    src = act_inputs[0]
    from_matrix = producer.get(src) in _MATRIX or src in fused_outputs
    return from_matrix and consumers.get(src, 0) == 1
