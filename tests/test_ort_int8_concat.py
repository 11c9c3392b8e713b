"""ONNX Runtime INT8: a Concat of small features with the raw image (CGNet's input injection) stays in float.

The failure mode of CGNet on CamVid (86 → 5 mIoU): the concat's one output scale is set by the
image (±128 with std 1), so the features (±1) land on one or two levels. The tiny net below has
the same pattern; quantised as ORT does by default it collapses, with the concat in float it does not.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from edgekd.backends import ort_int8  # noqa: E402
from edgekd.backends.calibration import CalibrationBatches  # noqa: E402


class Injected(torch.nn.Module):
    """conv → PReLU → concat(features, avgpool(image)) → BN → PReLU → 1×1 conv reading only the features."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.act = torch.nn.PReLU(8)
        self.pool = torch.nn.AvgPool2d(3, 1, 1)
        self.bn = torch.nn.BatchNorm2d(11)
        self.act2 = torch.nn.PReLU(11)
        self.head = torch.nn.Conv2d(11, 4, 1)
        with torch.no_grad():
            self.conv.weight.mul_(0.01)  # features in about ±1 for ±128 pixels
            self.bn.running_var[:8] = 0.04  # a trained BN normalises each input: the image channels (std ~50) come out ±3 too
            self.bn.running_var[8:] = 2500.0
            self.head.weight[:, 8:] = 0

    def forward(self, x):
        return self.head(self.act2(self.bn(torch.cat([self.act(self.conv(x)), self.pool(x)], 1))))


def _images(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.uniform(-110, 140, size=(n, 3, 4, 4)).astype(np.float32)  # smooth, image-like: block noise upsampled
    return np.ascontiguousarray(np.repeat(np.repeat(low, 8, axis=2), 8, axis=3))


def _run(path, x):
    s = ort_int8.session(path)
    return np.concatenate([s.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    work = tmp_path_factory.mktemp("concat")
    src, prepared = work / "src.onnx", work / "prepared.onnx"
    torch.onnx.export(Injected().eval(), torch.from_numpy(_images(1, 0)), str(src), input_names=["input"], output_names=["logits"],
                      opset_version=17, dynamo=False)
    ort_int8.prepare(src, prepared)
    return work, prepared


def test_mixed_range_concat_is_kept_in_float_and_keeps_agreement(graphs):
    work, prepared = graphs
    batches, val = CalibrationBatches(_images(8, 1)), _images(4, 2)
    reference = _run(prepared, val).argmax(1)
    # as the export does on this CPU: 7-bit weights where 8-bit ones saturate (x86 without VNNI; on an AVX2-only
    # EPYC the full-range graph agreed on only 0.90 of the pixels even with the concat in float)
    reduce = ort_int8.resolve_reduce_range("auto")[0]
    naive = work / "naive.onnx"
    ort_int8._quantize_static(prepared, naive, method="minmax", cache=work / "minmax.cache", batches=batches, exclude=[],
                              reduce_range=reduce)
    fixed = work / "fixed.onnx"
    mixed = ort_int8.quantize(prepared, fixed, method="minmax", cache=work / "minmax.cache", batches=None, exclude=[],
                              reduce_range=reduce)
    assert [c["node"] for c in mixed] == ["/Concat"] and mixed[0]["range_ratio"] > ort_int8.MIXED_RANGE_RATIO
    assert len(mixed[0]["input_ranges"]) == 2
    naive_agree = (_run(naive, val).argmax(1) == reference).mean()
    fixed_agree = (_run(fixed, val).argmax(1) == reference).mean()
    assert naive_agree < 0.8, f"the tiny net should reproduce the collapse (agreement {naive_agree:.3f})"
    assert fixed_agree > 0.95 and fixed_agree > naive_agree + 0.15


def test_concats_of_similar_ranges_stay_quantised(graphs, tmp_path):
    _, prepared = graphs
    cache = tmp_path / "c.cache"
    ort_int8._quantize_static(prepared, tmp_path / "q.onnx", method="minmax", cache=cache, batches=CalibrationBatches(_images(8, 1)), exclude=[])
    assert ort_int8.mixed_range_concats(prepared, cache, ratio=1e9) == []


def test_tensorrt_qdq_path_keeps_the_mixed_range_concat_in_float(graphs, tmp_path):
    """The symmetric QDQ graph handed to TensorRT has the same concat; it is kept in float there too."""
    import onnx

    from edgekd.backends.onnxruntime import quantize_qdq

    work, _ = graphs
    out = tmp_path / "trt.onnx"
    info = quantize_qdq(work / "src.onnx", out, CalibrationBatches(_images(8, 1)), method="minmax", symmetric=True)
    assert [c["node"] for c in info["concat_in_float"]] == ["/Concat"]
    graph = onnx.load(str(out)).graph
    concat = next(n for n in graph.node if n.op_type == "Concat")
    consumers = [n.op_type for n in graph.node if concat.output[0] in n.input]
    assert consumers and "QuantizeLinear" not in consumers, "the concat output must not be quantised"
