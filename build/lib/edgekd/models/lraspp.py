"""LR-ASPP on MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019).

The backbone is written here (torchvision is kept out of the dependencies: installing it swaps
in a CUDA build of torch). As in the paper's segmentation setting the last stage is dilated
(output stride 16) and the head mixes a stride-8 low-level feature with the gated stride-16
feature. The paper pools the high-level map with a fixed 49×49 average kernel (stride 16×20)
tuned to 1024×2048 Cityscapes crops, which breaks on other input sizes; this file uses global
average pooling instead (as torchvision's implementation does), so any camera size works.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.base import SegmentationModel, upsample_to
from edgekd.models.layers import ConvBNAct, InvertedResidual, init_classifier, init_weights, make_divisible, resize_to
from edgekd.models.registry import register_model


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block of a MobileNetV3 table (channels before width scaling)."""

    kernel: int
    expand: int
    out: int
    se: bool
    hardswish: bool
    stride: int


# Tables 1 and 2 of the MobileNetV3 paper (input channels follow from the previous row).
_LARGE = [
    BlockSpec(3, 16, 16, False, False, 1),
    BlockSpec(3, 64, 24, False, False, 2),
    BlockSpec(3, 72, 24, False, False, 1),
    BlockSpec(5, 72, 40, True, False, 2),
    BlockSpec(5, 120, 40, True, False, 1),
    BlockSpec(5, 120, 40, True, False, 1),
    BlockSpec(3, 240, 80, False, True, 2),
    BlockSpec(3, 200, 80, False, True, 1),
    BlockSpec(3, 184, 80, False, True, 1),
    BlockSpec(3, 184, 80, False, True, 1),
    BlockSpec(3, 480, 112, True, True, 1),
    BlockSpec(3, 672, 112, True, True, 1),
    BlockSpec(5, 672, 160, True, True, 2),
    BlockSpec(5, 960, 160, True, True, 1),
    BlockSpec(5, 960, 160, True, True, 1),
]
_SMALL = [
    BlockSpec(3, 16, 16, True, False, 2),
    BlockSpec(3, 72, 24, False, False, 2),
    BlockSpec(3, 88, 24, False, False, 1),
    BlockSpec(5, 96, 40, True, True, 2),
    BlockSpec(5, 240, 40, True, True, 1),
    BlockSpec(5, 240, 40, True, True, 1),
    BlockSpec(5, 120, 48, True, True, 1),
    BlockSpec(5, 144, 48, True, True, 1),
    BlockSpec(5, 288, 96, True, True, 2),
    BlockSpec(5, 576, 96, True, True, 1),
    BlockSpec(5, 576, 96, True, True, 1),
]
_SPECS = {"large": (_LARGE, 960), "small": (_SMALL, 576)}


class MobileNetV3Backbone(nn.Module):
    """MobileNetV3 feature extractor; returns the stride-8 and the final (stride-16) features.

    With ``dilated=True`` the last stride-2 block keeps stride 1 and its stage uses dilation 2,
    so the final map is at 1/16 of the input instead of 1/32 (the paper's segmentation setup).
    """

    def __init__(self, variant: str, width_mult: float = 1.0, dilated: bool = True) -> None:
        super().__init__()
        specs, last_ch = _SPECS[variant]
        ch = make_divisible(16 * width_mult)
        self.stem = ConvBNAct(3, ch, 3, stride=2, act=nn.Hardswish)
        blocks: list[nn.Module] = []
        stride, dilation = 2, 1
        self.low_index = -1
        for i, spec in enumerate(specs):
            block_stride = spec.stride
            if spec.stride == 2 and stride == 8:
                self.low_index = i - 1  # last block before leaving stride 8
            if spec.stride == 2 and stride == 16 and dilated:
                block_stride, dilation = 1, 2
            else:
                stride *= spec.stride
            out = make_divisible(spec.out * width_mult)
            act = nn.Hardswish if spec.hardswish else nn.ReLU
            blocks.append(
                InvertedResidual(ch, make_divisible(spec.expand * width_mult), out, spec.kernel,
                                 block_stride, dilation, spec.se, act)
            )
            ch = out
        self.blocks = nn.Sequential(*blocks)
        self.low_channels = blocks[self.low_index].out_channels
        self.high_channels = make_divisible(last_ch * width_mult)
        self.last = ConvBNAct(ch, self.high_channels, 1, act=nn.Hardswish)
        self.output_stride = stride

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        low = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == self.low_index:
                low = x
        return low, self.last(x)


class LRASPP(SegmentationModel):
    """Lite R-ASPP head: a 1×1 branch gated by a global-pool branch, plus a low-level classifier."""

    def __init__(self, num_classes: int, variant: str = "large", width_mult: float = 1.0,
                 inter_channels: int = 128) -> None:
        super().__init__(num_classes)
        if variant not in _SPECS:
            raise EdgekdError(f"MobileNetV3 variant {variant!r} is not one of {sorted(_SPECS)}")
        if width_mult <= 0:
            raise EdgekdError(f"width_mult={width_mult} must be > 0 (e.g. 0.75, 1.0)")
        self.backbone = MobileNetV3Backbone(variant, width_mult, dilated=True)
        high_ch, low_ch = self.backbone.high_channels, self.backbone.low_channels
        self.cbr = ConvBNAct(high_ch, inter_channels, 1, act=nn.ReLU)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_ch, inter_channels, 1, bias=False),
                                   nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)
        self.output_stride = self.backbone.output_stride
        self.feature_channels = {"low": low_ch, "context": high_ch, "pre_logits": inter_channels}
        init_weights(self)
        init_classifier(self.low_classifier, self.high_classifier)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        low, high = self.backbone(x)
        gated = self.cbr(high) * self.scale(high)
        gated = resize_to(gated, low.shape[-2:])
        logits = self.low_classifier(low) + self.high_classifier(gated)
        return upsample_to(logits, x), {"low": low, "context": high, "pre_logits": gated}


def _create_lraspp(variant: str, **kwargs) -> LRASPP:
    return LRASPP(variant=variant, **kwargs)


@register_model("lraspp_mobilenetv3_small", role="student", family="lraspp")
def lraspp_mobilenetv3_small(*, num_classes: int = 11, **kwargs) -> LRASPP:
    """LR-ASPP on MobileNetV3-Small (width_mult=1.0 by default), output stride 16."""
    return _create_lraspp("small", num_classes=num_classes, **kwargs)


@register_model("lraspp_mobilenetv3_large", role="student", family="lraspp")
def lraspp_mobilenetv3_large(*, num_classes: int = 11, **kwargs) -> LRASPP:
    """LR-ASPP on MobileNetV3-Large (width_mult=1.0 by default), output stride 16."""
    return _create_lraspp("large", num_classes=num_classes, **kwargs)
