"""Model zoo tests, generated from the registry so every registered model meets the contract.

Each zoo model is built with random weights and run on tiny CPU inputs; the ONNX parity test
exports every student (TorchScript exporter, opset 17) and compares ONNX Runtime with PyTorch.
"""
from __future__ import annotations

import inspect
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models import SegmentationModel, create_model, list_models, register_model
from edgekd.models.complexity import count_macs, count_params, model_summary
from edgekd.models.registry import UnknownModelError

torch.set_num_threads(1)

ALL_MODELS = [entry.name for entry in list_models()]
STUDENTS = [entry.name for entry in list_models(role="student")]
NUM_CLASSES = 5
H, W = 64, 96


def _build(name: str, **kwargs) -> SegmentationModel:
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, **kwargs)


def _calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """Give BN layers the running statistics of real activations, as a trained model has.

    Freshly initialised BN (mean 0, var 1) can shrink logits of a deep random net to ~1e-4,
    which would make an absolute-tolerance parity check meaningless.
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one pass sets the batch statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_and_features_contract(name: str) -> None:
    model = _build(name).eval()
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        logits, features = model.forward_features(x)
        plain = model(x)
    assert logits.shape == (1, NUM_CLASSES, H, W)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(plain, logits)
    assert set(features) == set(model.feature_channels), "forward_features keys must match feature_channels"
    for key, feat in features.items():
        assert feat.dim() == 4 and feat.shape[0] == 1, key
        assert feat.shape[1] == model.feature_channels[key], f"{key}: {feat.shape[1]} channels"
    assert "pre_logits" in features
    assert H % model.output_stride == 0 and W % model.output_stride == 0, "test size must suit output_stride"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_train_backward_reaches_every_parameter(name: str) -> None:
    model = _build(name).train()
    logits = model(torch.randn(2, 3, H, W))
    target = torch.randint(0, NUM_CLASSES, (2, H, W))
    nn.functional.cross_entropy(logits, target).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters unused by forward: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_input_size_not_divisible_by_output_stride(name: str) -> None:
    """Either the model handles the odd size, or it refuses loudly with a user-facing error."""
    model = _build(name).eval()
    x = torch.randn(1, 3, 67, 101)
    try:
        with torch.no_grad():
            logits = model(x)
    except EdgekdError as err:
        assert "67" in str(err) and "101" in str(err), f"error should name the bad size: {err}"
        return
    assert logits.shape == (1, NUM_CLASSES, 67, 101)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_builder_is_keyword_only(name: str) -> None:
    entry = next(e for e in list_models() if e.name == name)
    params = inspect.signature(entry.builder).parameters
    assert "num_classes" in params and params["num_classes"].default is not inspect.Parameter.empty
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params.values())
    assert entry.role in ("student", "teacher") and entry.family


def test_registry_lists_the_expected_zoo() -> None:
    expected_students = {"lraspp_mobilenetv3_small", "lraspp_mobilenetv3_large", "fast_scnn", "bisenetv2", "unet_tiny"}
    expected_teachers = {"deeplabv3_resnet", "deeplabv3_resnet18", "deeplabv3_resnet50"}
    assert expected_students <= set(STUDENTS)
    assert expected_teachers <= {e.name for e in list_models(role="teacher")}


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        @register_model("unet_tiny", role="student", family="unet")
        def _again(*, num_classes: int = 11) -> nn.Module:  # pragma: no cover - never built
            raise AssertionError
    assert next(e for e in list_models() if e.name == "unet_tiny").builder.__name__ == "unet_tiny"


def test_unknown_name_suggests_nearest() -> None:
    with pytest.raises(UnknownModelError, match="did you mean lraspp_mobilenetv3_small"):
        create_model("lraspp_mobilenetv3_smal", num_classes=NUM_CLASSES)


def test_user_builder_by_module_path(tmp_path, monkeypatch) -> None:
    module = tmp_path / "edgekd_test_user_model.py"
    module.write_text(textwrap.dedent("""
        import torch.nn.functional as F
        from torch import nn
        from edgekd.models import SegmentationModel

        class Tiny(SegmentationModel):
            output_stride = 2

            def __init__(self, num_classes):
                super().__init__(num_classes)
                self.conv = nn.Conv2d(3, num_classes, 3, stride=2, padding=1)
                self.feature_channels = {"pre_logits": num_classes}

            def forward_features(self, x):
                y = self.conv(x)
                return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False), {"pre_logits": y}

        def tiny_builder(*, num_classes=3):
            return Tiny(num_classes)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = create_model("edgekd_test_user_model:tiny_builder", num_classes=4)
    assert model(torch.randn(1, 3, 8, 10)).shape == (1, 4, 8, 10)
    with pytest.raises(UnknownModelError, match="no builder"):
        create_model("edgekd_test_user_model:missing", num_classes=4)


def test_builder_kwargs_change_the_architecture() -> None:
    small = count_params(_build("lraspp_mobilenetv3_small"))
    slim = count_params(_build("lraspp_mobilenetv3_small", width_mult=0.5))
    assert slim < 0.6 * small
    os16 = _build("deeplabv3_resnet", depth=18, width=16, output_stride=16).eval()
    os8 = _build("deeplabv3_resnet", depth=18, width=16, output_stride=8).eval()
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        assert os16.forward_features(x)[1]["stage4"].shape[-2:] == (H // 16, W // 16)
        assert os8.forward_features(x)[1]["stage4"].shape[-2:] == (H // 8, W // 8)
    with pytest.raises(EdgekdError, match="output_stride=4"):
        _build("deeplabv3_resnet", output_stride=4)
    with pytest.raises(EdgekdError, match="depth=101"):
        _build("deeplabv3_resnet", depth=101)


def test_count_macs_matches_hand_count() -> None:
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8))
    conv.train()
    expected = 8 * 3 * 9 * 20 * 30 + 8 * 1 * 9 * 20 * 30  # dense conv + depthwise conv
    assert count_macs(conv, (20, 30)) == expected
    assert conv.training, "count_macs must restore the training mode"
    assert count_params(conv) == (8 * 3 * 9 + 8) + (8 * 9 + 8)
    with pytest.raises(EdgekdError, match="input_size"):
        count_macs(conv, (0, 30))


def test_model_summary_fields() -> None:
    summary = model_summary("unet_tiny", (64, 96), num_classes=NUM_CLASSES)
    assert summary["role"] == "student" and summary["family"] == "unet"
    assert summary["output_stride"] == 16 and summary["input_size"] == [64, 96]
    assert summary["params"] == count_params(_build("unet_tiny"))
    assert 0 < summary["macs"] < 1e9


@pytest.mark.parametrize("name", STUDENTS)
def test_onnx_export_matches_torch(name: str, tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _build(name)
    x = torch.randn(1, 3, H, W)
    _calibrate_batchnorm(model, torch.cat([x, torch.randn(3, 3, H, W)]))  # x among them: bounded BN outputs
    with torch.no_grad():
        reference = model(x).numpy()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    onnx.checker.check_model(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {"image": x.numpy()})[0]
    assert out.shape == (1, NUM_CLASSES, H, W)
    assert np.abs(reference).max() > 1e-2, "logits too small for the tolerance to mean anything"
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-4)
