"""ONNX Runtime INT8 on x86 CPUs without VNNI: 7-bit weights (``reduce_range``) where 8-bit ones
saturate the int16 pair sums of ORT's U8S8 kernels, the choice recorded in the manifest."""
from __future__ import annotations

import pytest

from edgekd.backends.ort_int8 import resolve_reduce_range
from edgekd.errors import EdgekdError


@pytest.mark.parametrize("isa, expected", [
    (["avx", "avx2", "fma"], True),  # AMD EPYC / Intel without VNNI: VPMADDUBSW saturates
    (["avx2", "avx512f", "avx512_vnni"], False),  # VNNI: int32 accumulation, no saturation
    (["avx2", "avx_vnni"], False),
    (["asimd", "asimddp"], False),  # ARM: other kernels
])
def test_auto_turns_reduce_range_on_exactly_on_x86_without_vnni(isa, expected):
    on, reason = resolve_reduce_range("auto", isa)
    assert on is expected and reason.startswith("auto: on" if expected else "auto: off")
    assert resolve_reduce_range(None, isa)[0] is expected


@pytest.mark.parametrize("value, expected", [("on", True), ("off", False), (True, True), ("False", False)])
def test_an_explicit_choice_wins_over_the_cpu(value, expected):
    assert resolve_reduce_range(value, ["avx2"])[0] is expected
    assert resolve_reduce_range(value, ["avx2", "avx512_vnni"])[0] is expected


def test_a_bad_value_names_it_and_the_choices():
    with pytest.raises(EdgekdError, match=r"reduce_range 'sometimes': use auto, on or off"):
        resolve_reduce_range("sometimes", ["avx2"])


def test_the_manifest_records_the_choice(tmp_path):
    pytest.importorskip("onnxruntime")
    import numpy as np
    import torch

    from edgekd.backends.calibration import CalibrationBatches
    from edgekd.backends.ort_int8 import search

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).eval()
    src = tmp_path / "m.onnx"
    torch.onnx.export(model, torch.randn(1, 3, 16, 16), str(src), input_names=["input"], output_names=["logits"], dynamo=False)
    images = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    fields = search(src, tmp_path / "int8.onnx", CalibrationBatches(images, batch_size=1), method="minmax", budget_option=None,
                    val_images=None, val_masks=None, num_classes=4, ignore_index=None, reduce_range="on")
    quant = fields["quantization"]
    assert quant["reduce_range"] == "on (asked)" and quant["weights"].endswith("7-bit range (reduce_range)")
    off = search(src, tmp_path / "int8-off.onnx", CalibrationBatches(images, batch_size=1), method="minmax", budget_option=None,
                 val_images=None, val_masks=None, num_classes=4, ignore_index=None, reduce_range="off")["quantization"]
    assert off["reduce_range"] == "off (asked)" and off["weights"] == "int8 symmetric per-channel"
