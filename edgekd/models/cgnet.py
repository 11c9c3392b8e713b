"""CGNet (Wu et al., "CGNet: A Light-weight Context Guided Network for Semantic Segmentation", 2018).

Written for edgekd from the paper and from the state-dict key list of the authors' CamVid model, so
that checkpoints of the original code base (github.com/wutianyiRosun/CGNet, MIT) load with strict
key matching. Submodule names therefore follow the original ones (``level1_0``, ``F_loc``, ``F_sur``,
``F_glo``, ``bn_prelu_2`` ...) even where edgekd would name things differently.

Structure (paper, Fig. 3): a 3-conv stem at 1/2, stage 2 of M context-guided (CG) blocks at 1/4,
stage 3 of N CG blocks at 1/8, input injection (the down-sampled image concatenated at 1/2 and 1/4),
a 1x1 classifier at 1/8 and a bilinear upsample (align_corners=False) to the input size inside the
model, as in the original ``forward``. Every stride-2 layer pads, so any H×W works; the nominal
output stride is 8.
"""
from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.base import Normalization, SegmentationModel, upsample_to
from edgekd.models.registry import register_model

# The CamVid model's training code subtracted these from RGB pixels in 0..255 and did not scale.
CGNET_CAMVID = Normalization(mean=(105.66, 103.33, 99.63), std=(1.0, 1.0, 1.0), channel_order="RGB")

_BN_EPS = 1e-3  # the original code uses 1e-3 everywhere; the running stats were collected with it


class ConvBNPReLU(nn.Module):
    """Conv (no bias, 'same' padding) → BatchNorm → PReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=_BN_EPS)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class BNPReLU(nn.Module):
    """BatchNorm → PReLU, used after every concatenation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, eps=_BN_EPS)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class Conv(nn.Module):
    """A bias-free convolution kept in a wrapper so its key is ``<name>.conv.weight`` as in the original."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 1, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        padding = (kernel_size // 2) * dilation
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, 1, padding, dilation=dilation, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _depthwise3x3(channels: int, dilation: int = 1) -> Conv:
    """F_loc (dilation 1) and F_sur (dilation r): channel-wise 3x3 convolutions."""
    return Conv(channels, channels, 3, dilation=dilation, groups=channels)


class GlobalContext(nn.Module):
    """F_glo: squeeze-and-excitation style channel re-weighting from the global average."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)  # exports as GlobalAveragePool
        self.fc = nn.Sequential(
            nn.Linear(channels, channels // reduction), nn.ReLU(inplace=True),
            nn.Linear(channels // reduction, channels), nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.fc(self.pool(x).flatten(1))
        return x * weights.unsqueeze(-1).unsqueeze(-1)


class ContextGuidedBlockDown(nn.Module):
    """The first CG block of a stage: halves H×W, joint feature at 2·out, reduced back to out."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int, reduction: int) -> None:
        super().__init__()
        self.conv1x1 = ConvBNPReLU(in_ch, out_ch, 3, 2)  # named 1x1 in the original, but 3x3 stride 2
        self.F_loc = _depthwise3x3(out_ch)
        self.F_sur = _depthwise3x3(out_ch, dilation)
        self.bn = nn.BatchNorm2d(2 * out_ch, eps=_BN_EPS)
        self.act = nn.PReLU(2 * out_ch)
        self.reduce = Conv(2 * out_ch, out_ch, 1)
        self.F_glo = GlobalContext(out_ch, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1x1(x)
        joint = self.act(self.bn(torch.cat([self.F_loc(x), self.F_sur(x)], 1)))
        return self.F_glo(self.reduce(joint))


class ContextGuidedBlock(nn.Module):
    """CG block: 1x1 to half width, local + surrounding context, global re-weighting, residual add."""

    def __init__(self, channels: int, dilation: int, reduction: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv1x1 = ConvBNPReLU(channels, half, 1)
        self.F_loc = _depthwise3x3(half)
        self.F_sur = _depthwise3x3(half, dilation)
        self.bn_prelu = BNPReLU(channels)
        self.F_glo = GlobalContext(channels, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1x1(x)
        joint = self.bn_prelu(torch.cat([self.F_loc(y), self.F_sur(y)], 1))
        return x + self.F_glo(joint)


def _avg_pool_half() -> nn.AvgPool2d:
    """Input injection: the image down-sampled by 3x3 average pooling (padding counted, as in the original)."""
    return nn.AvgPool2d(3, stride=2, padding=1)


class CGNet(SegmentationModel):
    """CGNet-M{stage2_blocks}-N{stage3_blocks}; logits at input size.

    Features: ``stage1`` (35 ch, 1/2), ``stage2`` (131 ch, 1/4), ``stage3`` (256 ch, 1/8) are the
    concatenated outputs of each stage; ``pre_logits`` is the classifier's input, which in CGNet is
    the same tensor as ``stage3`` (the classifier is a single 1x1 conv on it).
    """

    output_stride = 8
    normalization = CGNET_CAMVID

    def __init__(self, num_classes: int = 11, *, stage2_blocks: int = 3, stage3_blocks: int = 21) -> None:
        super().__init__(num_classes)
        for name, value in (("stage2_blocks", stage2_blocks), ("stage3_blocks", stage3_blocks)):
            if value < 2:
                raise EdgekdError(f"CGNet {name}={value} is too small: each stage needs at least 2 blocks (paper: M=3, N=21)")
        self.level1_0 = ConvBNPReLU(3, 32, 3, 2)
        self.level1_1 = ConvBNPReLU(32, 32, 3)
        self.level1_2 = ConvBNPReLU(32, 32, 3)
        self.inject = _avg_pool_half()
        # A second (parameter-free) pooling module for the 1/4 image: one module called twice is one node
        # in torch-pruning's dependency graph, which then mis-maps the channels of the stage-2 concatenation.
        self.inject_quarter = _avg_pool_half()
        self.b1 = BNPReLU(32 + 3)
        self.level2_0 = ContextGuidedBlockDown(32 + 3, 64, dilation=2, reduction=8)
        self.level2 = nn.ModuleList(ContextGuidedBlock(64, 2, 8) for _ in range(stage2_blocks - 1))
        self.bn_prelu_2 = BNPReLU(128 + 3)
        self.level3_0 = ContextGuidedBlockDown(128 + 3, 128, dilation=4, reduction=16)
        self.level3 = nn.ModuleList(ContextGuidedBlock(128, 4, 16) for _ in range(stage3_blocks - 1))
        self.bn_prelu_3 = BNPReLU(256)
        self.classifier = nn.Sequential(Conv(256, num_classes, 1))
        self.feature_channels = {"stage1": 35, "stage2": 131, "stage3": 256, "pre_logits": 256}

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image_half = self.inject(x)
        image_quarter = self.inject_quarter(image_half)  # identical to the original's second, separate pooling chain
        stem = self.level1_2(self.level1_1(self.level1_0(x)))
        stage1 = self.b1(torch.cat([stem, image_half], 1))
        down2 = self.level2_0(stage1)
        stage2 = self.bn_prelu_2(torch.cat([_run(self.level2, down2), down2, image_quarter], 1))
        down3 = self.level3_0(stage2)
        stage3 = self.bn_prelu_3(torch.cat([down3, _run(self.level3, down3)], 1))
        logits = upsample_to(self.classifier(stage3), x)
        return logits, {"stage1": stage1, "stage2": stage2, "stage3": stage3, "pre_logits": stage3}


def _run(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


@register_model("cgnet_m3n21", role="teacher", family="cgnet")
def cgnet_m3n21(*, num_classes: int = 11, **kw) -> CGNet:
    """CGNet M=3, N=21 (0.5 M params), the configuration of the authors' CamVid and Cityscapes models."""
    return CGNet(num_classes, **{"stage2_blocks": 3, "stage3_blocks": 21, **kw})
