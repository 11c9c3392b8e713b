"""CGNet and ESPNet: the re-implemented architectures of the two real CamVid teachers.

Fast tests build the networks and run tiny non-square inputs; when ../shared is present, the real
weight files must load with strict key matching; the slow test checks CamVid-val accuracy.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from edgekd.errors import EdgekdError
from edgekd.models import create_model, list_models

SHARED = Path(__file__).resolve().parents[2] / "shared"
MODELS_DIR = SHARED / "models"
CAMVID = SHARED / "data" / "camvid"
WEIGHTS = {
    "cgnet_m3n21": ("cgnet_m3n21_camvid_trainval", 11),
    "espnet_p2q8": ("espnet_p2q8_camvid", 12),
}
ARCHS = sorted(WEIGHTS)
needs_models = pytest.mark.skipif(not MODELS_DIR.is_dir(), reason=f"real pretrained models not found at {MODELS_DIR}")


def _build(arch: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(arch, num_classes=WEIGHTS[arch][1], **kw).eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_registered_as_teacher(arch: str) -> None:
    entry = {e.name: e for e in list_models(role="teacher")}[arch]
    assert entry.family == arch.split("_")[0]


@pytest.mark.parametrize("arch", ARCHS)
def test_forward_non_square_keeps_size_and_features_match(arch: str) -> None:
    model = _build(arch)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        logits, feats = model.forward_features(x)
        plain = model(x)
    assert logits.shape == (1, WEIGHTS[arch][1], 64, 96)
    torch.testing.assert_close(plain, logits)
    assert list(feats) == list(model.feature_channels)
    for name, feat in feats.items():
        assert feat.shape[1] == model.feature_channels[name], name
    assert [feats[f"stage{i}"].shape[-2:] for i in (1, 2, 3)] == [(32, 48), (16, 24), (8, 12)]


@pytest.mark.parametrize("arch", ARCHS)
def test_trains_one_step(arch: str) -> None:
    model = _build(arch).train()
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    loss = model(torch.randn(2, 3, 32, 48)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)


def test_cgnet_accepts_sizes_not_divisible_by_8() -> None:
    with torch.no_grad():
        out = _build("cgnet_m3n21")(torch.randn(1, 3, 45, 70))
    assert out.shape[-2:] == (45, 70)


def test_espnet_rejects_sizes_not_divisible_by_8_with_fix() -> None:
    with pytest.raises(EdgekdError, match=r"divisible by 8, got 60x90.*64x88"):
        _build("espnet_p2q8")(torch.randn(1, 3, 60, 90))


def test_depth_is_configurable() -> None:
    cgnet = _build("cgnet_m3n21", stage2_blocks=2, stage3_blocks=4)
    espnet = _build("espnet_p2q8", p=1, q=3)
    assert (len(cgnet.level2), len(cgnet.level3)) == (1, 3)
    assert (len(espnet.encoder.level2), len(espnet.encoder.level3)) == (1, 3)
    with pytest.raises(EdgekdError, match="stage3_blocks=1"):
        _build("cgnet_m3n21", stage3_blocks=1)


def test_normalization_reproduces_original_preprocessing() -> None:
    rgb = torch.randint(0, 256, (1, 3, 4, 6)).float()
    espnet, cgnet = _build("espnet_p2q8"), _build("cgnet_m3n21")
    bgr = rgb.flip(1)
    mean = torch.tensor([110.33, 108.41, 105.03]).view(1, 3, 1, 1)
    std = torch.tensor([72.13, 72.69, 69.90]).view(1, 3, 1, 1)
    torch.testing.assert_close(espnet.normalization.apply(rgb), (bgr - mean) / std / 255)
    rgb_mean = torch.tensor([105.66, 103.33, 99.63]).view(1, 3, 1, 1)
    torch.testing.assert_close(cgnet.normalization.apply(rgb), rgb - rgb_mean)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter is deprecated but is the opset-17 path
@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_export_uses_standard_ops_and_matches(arch: str, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model, x = _build(arch), torch.randn(1, 3, 48, 80)
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17, input_names=["input"])
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert all(node.domain in ("", "ai.onnx") for node in proto.graph.node)
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, model(x).numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_edgekd_checkpoint_round_trip(arch: str, tmp_path: Path) -> None:
    model = _build(arch)
    norm = model.normalization
    meta = CheckpointMeta(arch=arch, num_classes=model.num_classes, class_names=[str(i) for i in range(model.num_classes)],
                          ignore_index=11, input_size=[360, 480], mean=list(norm.mean), std=list(norm.std),
                          channel_order=norm.channel_order)
    path = save_checkpoint(tmp_path / "m.safetensors", model, meta)
    loaded, loaded_meta = load_checkpoint(path)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    assert loaded_meta.normalization == norm


@needs_models
@pytest.mark.parametrize("arch", ARCHS)
def test_real_weights_key_list_matches_architecture(arch: str) -> None:
    listed = {}
    for line in (MODELS_DIR / f"{WEIGHTS[arch][0]}.keys.txt").read_text().splitlines():
        key, shape, _ = line.split("\t")
        listed[key] = shape
    own = {k: str(tuple(v.shape)) for k, v in _build(arch).state_dict().items()}
    assert own == listed


@needs_models
@pytest.mark.parametrize("arch", ARCHS)
def test_real_weights_load_strictly(arch: str) -> None:
    model, meta = load_checkpoint(MODELS_DIR / f"{WEIGHTS[arch][0]}.pth", arch=arch)
    assert meta.num_classes == WEIGHTS[arch][1]
    assert meta.trained_with["method"] == "imported"
    assert not model.training


def _val_miou(model: torch.nn.Module, limit: int) -> float:
    """mIoU over classes 0..10 on the first ``limit`` val images; void (11) ignored, predicted 11 is wrong."""
    import cv2

    conf = np.zeros((11, model.num_classes), dtype=np.int64)
    for path in sorted((CAMVID / "val").glob("*.png"))[:limit]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        label = cv2.imread(str(CAMVID / "valannot" / path.name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        with torch.no_grad():
            pred = model(model.normalization.apply(torch.from_numpy(rgb).permute(2, 0, 1)[None])).argmax(1)[0].numpy()
        keep = label < 11
        conf += np.bincount(label[keep] * model.num_classes + pred[keep], minlength=conf.size).reshape(conf.shape)
    tp = np.diag(conf[:, :11])
    return float(100 * np.mean(tp / (conf.sum(1) + conf[:, :11].sum(0) - tp)))


# Full CamVid val (101 images) measured with /tmp/teachers/eval_val.py: CGNet 85.69 mIoU (it was
# trained on train+val, so this is optimistic), ESPNet 70.10 (trained on train; val shares sequence
# 0016E5 with 204 train frames, hence well above its 55.6 published test figure). The first 10 val
# images gave CGNet 82.20, ESPNet 69.15; the floors leave ~4 points of slack.
VAL10_FLOOR = {"cgnet_m3n21": 78.0, "espnet_p2q8": 65.0}


@pytest.mark.slow
@needs_models
@pytest.mark.skipif(not (CAMVID / "val").is_dir(), reason=f"CamVid val not found at {CAMVID}")
@pytest.mark.parametrize("arch", ARCHS)
def test_real_weights_camvid_val_accuracy(arch: str) -> None:
    torch.set_flush_denormal(True)  # CGNet's weights are ~50% subnormal: 20x slower on x86 otherwise
    try:
        model, _ = load_checkpoint(MODELS_DIR / f"{WEIGHTS[arch][0]}.pth", arch=arch)
        assert _val_miou(model, limit=10) > VAL10_FLOOR[arch]
    finally:
        torch.set_flush_denormal(False)
