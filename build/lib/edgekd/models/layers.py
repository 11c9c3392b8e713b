"""Building blocks shared by the zoo architectures.

Everything here is restricted to operators that every deployment converter edgekd targets
accepts (ONNX opset 17 via TorchScript and dynamo export, OpenVINO, TensorRT, Core ML):
Conv2d, BatchNorm2d, ReLU / Hardswish / Hardsigmoid / Sigmoid, element-wise add and mul,
concat, AdaptiveAvgPool2d(1) (global pooling only) and bilinear resizing to an explicit size
with ``align_corners=False``. See docs/models.md for why each of the others is avoided.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

ActLayer = Callable[[], nn.Module]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a (width-multiplied) channel count to a multiple of ``divisor`` (as MobileNet does).

    Hardware kernels run fastest on channel counts that are multiples of 8; the rounding never
    goes below 90% of ``value`` so a width multiplier keeps its meaning.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize to an explicit spatial ``size`` (never a scale factor).

    An explicit size keeps odd input sizes working (a stride-2 layer gives ceil(H/2), which a
    ``scale_factor=2`` upsample would not undo) and exports as a plain Resize node.
    """
    if not torch.jit.is_tracing() and tuple(x.shape[-2:]) == tuple(size):
        return x  # eager shortcut; a traced graph keeps the Resize so it stays valid for other sizes
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) → BatchNorm2d → activation; 'same' padding for odd kernels.

    ``act=None`` leaves the activation out (a linear projection, as in inverted residuals).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: ActLayer | None = nn.ReLU,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)
        self.out_channels = out_ch


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise 3×3 conv-BN-act followed by a pointwise 1×1 conv-BN-act (MobileNetV1 style)."""

    def __init__(
        self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1, act: ActLayer = nn.ReLU
    ) -> None:
        super().__init__(
            ConvBNAct(in_ch, in_ch, 3, stride, dilation, groups=in_ch, act=act),
            ConvBNAct(in_ch, out_ch, 1, act=act),
        )
        self.out_channels = out_ch


class SqueezeExcite(nn.Module):
    """Channel attention: global average → 1×1 reduce → ReLU → 1×1 expand → gate × input."""

    def __init__(self, channels: int, squeeze_channels: int, gate: ActLayer = nn.Hardsigmoid) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1×1 expand → k×k depthwise (→ SE) → 1×1 linear project (+ skip).

    The skip is used only when stride is 1 and channels match, so odd spatial sizes are safe.
    """

    def __init__(
        self,
        in_ch: int,
        expand_ch: int,
        out_ch: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        use_se: bool = False,
        act: ActLayer = nn.ReLU,
    ) -> None:
        super().__init__()
        self.use_residual = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ch != in_ch:
            layers.append(ConvBNAct(in_ch, expand_ch, 1, act=act))
        layers.append(ConvBNAct(expand_ch, expand_ch, kernel_size, stride, dilation, groups=expand_ch, act=act))
        if use_se:
            layers.append(SqueezeExcite(expand_ch, make_divisible(expand_ch // 4, 8)))
        layers.append(ConvBNAct(expand_ch, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_residual else y


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convs, unit BN, small linear init: a sane start without pretrained weights."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def init_classifier(*convs: nn.Conv2d) -> None:
    """Small-normal (std 0.01) weights and zero bias for the final 1×1 classifier convs.

    Starting logits near zero give an almost uniform softmax, so cross-entropy and KD losses
    start from sane values when a model is trained from scratch (as in mmsegmentation heads).
    """
    for conv in convs:
        nn.init.normal_(conv.weight, 0.0, 0.01)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)
