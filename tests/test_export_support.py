"""Shared pieces of the export and backend tests: a tiny segmentation model and checkpoints of it.

The other test_export*/test_backend_* modules import from here (pytest puts tests/ on sys.path),
and the model is reached by checkpoints as ``test_export_support:build_tiny``, so these tests do
not depend on the zoo students' sizes. The model has what real students have: stride-2 conv
blocks with BatchNorm and Hardswish, a global-pool gate, a 1×1 head and in-graph bilinear
upsampling (output stride 8).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.checkpoint import CheckpointMeta, save_checkpoint
from edgekd.models.base import SegmentationModel, upsample_to

TINY_ARCH = "test_export_support:build_tiny"
SIZE = (64, 96)
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
# Argmax-agreement floor for the tiny model's INT8 exports (4 parity images, 12 calibration
# images). Its margins between classes are small, so the figure depends on the CPU's INT8
# kernels: 0.96-0.99 (OpenVINO) and 0.98-0.99 (ONNX Runtime) over 5 training seeds on an AMD
# EPYC with AVX-512 VNNI/bf16, but 0.881 for OpenVINO on one CI machine. A broken quantiser (wrong
# scale or normalisation) lands far below this; whether INT8 keeps a real model's accuracy is
# the accuracy gate's job, tested on its own.
INT8_AGREEMENT_FLOOR = 0.8


class TinySeg(SegmentationModel):
    output_stride = 8

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes)

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.Hardswish())

        self.s1, self.s2, self.s3 = block(3, 16), block(16, 24), block(24, 32)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(32, 32, 1), nn.Sigmoid())
        self.head = nn.Conv2d(32, num_classes, 1)
        self.feature_channels = {"s2": 24, "s3": 32}

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        f2 = self.s2(self.s1(x))
        f3 = self.s3(f2)
        return upsample_to(self.head(f3 * self.gate(f3)), x), {"s2": f2, "s3": f3}


def build_tiny(*, num_classes: int = 5) -> TinySeg:
    return TinySeg(num_classes)


def make_checkpoint(path: Path, model: nn.Module, *, class_names: list[str], ignore_index: int = 255,
                    size: tuple[int, int] = SIZE) -> Path:
    meta = CheckpointMeta(arch=TINY_ARCH, num_classes=len(class_names), class_names=list(class_names),
                          ignore_index=ignore_index, input_size=list(size), mean=MEAN, std=STD,
                          trained_with={"method": "test"})
    return save_checkpoint(path, model, meta)


def train_briefly(model: nn.Module, root: Path, steps: int = 40, seed: int = 0) -> nn.Module:
    """A few SGD steps on the synthetic train split, so class maps have structure (INT8 tests on
    an untrained model would only measure how ties between near-equal logits break)."""
    from edgekd.data import build_eval_transform, open_dataset

    torch.manual_seed(seed)
    data = open_dataset(root, "train", transform=build_eval_transform(SIZE))
    images = torch.stack([data[i][0] for i in range(len(data))]).float()
    masks = torch.stack([data[i][1] for i in range(len(data))])
    x = (images - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(x), (4,))
        loss = nn.functional.cross_entropy(model(x[idx]), masks[idx], ignore_index=data.info.ignore_index)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


_TRAINED: dict[str, Path] = {}


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, synthetic_root) -> Path:
    """A briefly trained tiny model whose classes are the synthetic dataset's.

    Each test module imports this fixture, which pytest treats as one fixture per module, so the
    checkpoint is memoised here to train once per session.
    """
    from edgekd.data import open_dataset

    key = str(synthetic_root)
    if key not in _TRAINED:
        info = open_dataset(synthetic_root, "val").info
        model = train_briefly(build_tiny(num_classes=info.num_classes), synthetic_root)
        _TRAINED[key] = make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors", model,
                                        class_names=list(info.class_names), ignore_index=info.ignore_index)
    return _TRAINED[key]


def normalized_val_images(root: Path, count: int = 4) -> np.ndarray:
    """Real (synthetic-scene) validation images, normalised as the tiny model expects."""
    from edgekd.data import build_eval_transform, open_dataset

    data = open_dataset(root, "val", transform=build_eval_transform(SIZE))
    pixels = np.stack([data[i][0].numpy() for i in range(min(count, len(data)))]).astype(np.float32)
    return ((pixels - np.array(MEAN, np.float32).reshape(1, 3, 1, 1)) / np.array(STD, np.float32).reshape(1, 3, 1, 1)).astype(np.float32)


def torch_logits(ckpt: Path, x: np.ndarray) -> np.ndarray:
    from edgekd.checkpoint import load_checkpoint

    model, _ = load_checkpoint(ckpt)
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_tiny_model_follows_the_segmentation_contract():
    model = build_tiny(num_classes=3).eval()
    logits, features = model.forward_features(torch.zeros(1, 3, *SIZE))
    assert logits.shape == (1, 3, *SIZE)
    assert {k: v.shape[1] for k, v in features.items()} == model.feature_channels
