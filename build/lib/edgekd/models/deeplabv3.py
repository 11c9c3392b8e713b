"""DeepLabV3 teacher (Chen et al., "Rethinking Atrous Convolution for Semantic Image
Segmentation", 2017) on a ResNet backbone (He et al., CVPR 2016) written here.

ResNet-18/34 (basic blocks) or -50 (bottlenecks), with a configurable base width, and output
stride 8 or 16 obtained by replacing the stride of the last one or two stages with dilation.
The ASPP has a 1×1 branch, three dilated 3×3 branches (rates 6/12/18 at stride 16, doubled at
stride 8, as in the paper) and an image-pooling branch that uses global pooling only. No
auxiliary FCN head: teachers here are trained from scratch on the task's own data.
"""
from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.base import SegmentationModel, upsample_to
from edgekd.models.layers import ConvBNAct, init_classifier, init_weights, resize_to
from edgekd.models.registry import register_model


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.body = nn.Sequential(ConvBNAct(in_ch, width, 3, stride, dilation),
                                  ConvBNAct(width, out_ch, 3, dilation=dilation, act=None))
        self.shortcut = _shortcut(in_ch, out_ch, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.body = nn.Sequential(
            ConvBNAct(in_ch, width, 1), ConvBNAct(width, width, 3, stride, dilation),
            ConvBNAct(width, out_ch, 1, act=None),
        )
        self.shortcut = _shortcut(in_ch, out_ch, stride)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def _shortcut(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return ConvBNAct(in_ch, out_ch, 1, stride, act=None)


_DEPTHS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3))}


class ResNetBackbone(nn.Module):
    """ResNet stages 1–4; stages 3/4 trade stride for dilation to reach ``output_stride``."""

    def __init__(self, depth: int, width: int, output_stride: int) -> None:
        super().__init__()
        block, counts = _DEPTHS[depth]
        self.stem = nn.Sequential(ConvBNAct(3, width, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
        dilate = {8: (False, True, True), 16: (False, False, True)}[output_stride]
        in_ch, dilation, stages = width, 1, []
        for i, count in enumerate(counts):
            stride = 1 if i == 0 else 2
            if i > 0 and dilate[i - 1]:
                stride, dilation = 1, dilation * 2
            blocks = [block(in_ch, width * 2**i, stride, dilation)]
            in_ch = width * 2**i * block.expansion
            blocks += [block(in_ch, width * 2**i, 1, dilation) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.channels = [width * 2**i * block.expansion for i in range(4)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with a global image-pooling branch, projected to ``out_ch``."""

    def __init__(self, in_ch: int, out_ch: int, rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([ConvBNAct(in_ch, out_ch, 1)] + [ConvBNAct(in_ch, out_ch, 3, dilation=r) for r in rates])
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(in_ch, out_ch, 1))
        self.project = nn.Sequential(ConvBNAct(out_ch * 5, out_ch, 1), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(resize_to(self.image_pool(x), x.shape[-2:]))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3(SegmentationModel):
    """DeepLabV3: dilated ResNet → ASPP → 3×3 conv → 1×1 classifier → bilinear to input size."""

    def __init__(self, num_classes: int, depth: int = 50, width: int = 64, output_stride: int = 8,
                 aspp_channels: int = 256) -> None:
        super().__init__(num_classes)
        if depth not in _DEPTHS:
            raise EdgekdError(f"ResNet depth={depth} is not supported; choose one of {sorted(_DEPTHS)}")
        if output_stride not in (8, 16):
            raise EdgekdError(f"output_stride={output_stride} must be 8 or 16")
        if width < 8:
            raise EdgekdError(f"width={width} is too small; use the ResNet base width, e.g. 32 or 64")
        self.backbone = ResNetBackbone(depth, width, output_stride)
        rates = (12, 24, 36) if output_stride == 8 else (6, 12, 18)
        self.aspp = ASPP(self.backbone.channels[3], aspp_channels, rates)
        self.head = ConvBNAct(aspp_channels, aspp_channels, 3)
        self.logits = nn.Conv2d(aspp_channels, num_classes, 1)
        self.output_stride = output_stride
        self.feature_channels = {f"stage{i + 1}": c for i, c in enumerate(self.backbone.channels)}
        self.feature_channels.update(context=aspp_channels, pre_logits=aspp_channels)
        init_weights(self)
        init_classifier(self.logits)
        for m in self.modules():  # zero-init the last BN of each residual branch (Goyal et al. 2017)
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.body[-1][1].weight)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        stages = self.backbone(x)
        context = self.aspp(stages[-1])
        pre_logits = self.head(context)
        logits = upsample_to(self.logits(pre_logits), x)
        features = {f"stage{i + 1}": s for i, s in enumerate(stages)}
        features.update(context=context, pre_logits=pre_logits)
        return logits, features


# Default configuration of each registered name; keyword arguments override any of them.
_VARIANTS: dict[str, dict] = {
    "deeplabv3_resnet": {"depth": 50, "output_stride": 16},
    "deeplabv3_resnet18": {"depth": 18, "output_stride": 8},
    "deeplabv3_resnet50": {"depth": 50, "output_stride": 8},
}


def _create_deeplabv3(variant: str, **kwargs) -> DeepLabV3:
    return DeepLabV3(**{**_VARIANTS[variant], **kwargs})


@register_model("deeplabv3_resnet", role="teacher", family="deeplabv3")
def deeplabv3_resnet(*, num_classes: int = 11, **kwargs) -> DeepLabV3:
    """DeepLabV3, configurable ResNet (depth=18/34/50, width, output_stride=8/16); default R-50, OS 16."""
    return _create_deeplabv3("deeplabv3_resnet", num_classes=num_classes, **kwargs)


@register_model("deeplabv3_resnet18", role="teacher", family="deeplabv3")
def deeplabv3_resnet18(*, num_classes: int = 11, **kwargs) -> DeepLabV3:
    """DeepLabV3 on ResNet-18, output stride 8: a teacher that trains on a CPU in hours, not days."""
    return _create_deeplabv3("deeplabv3_resnet18", num_classes=num_classes, **kwargs)


@register_model("deeplabv3_resnet50", role="teacher", family="deeplabv3")
def deeplabv3_resnet50(*, num_classes: int = 11, **kwargs) -> DeepLabV3:
    """DeepLabV3 on ResNet-50, output stride 8: the paper's strongest setting (heavy, ~40 M params)."""
    return _create_deeplabv3("deeplabv3_resnet50", num_classes=num_classes, **kwargs)
