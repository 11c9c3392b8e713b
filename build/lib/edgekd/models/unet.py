"""A tiny U-Net baseline (Ronneberger et al., MICCAI 2015, slimmed the ENet way).

The floor every distilled student should beat: an encoder-decoder with skip connections and
nothing clever. To stay real-time on a CPU it starts at 1/2 resolution (like ENet's initial
block) and uses depthwise-separable convolutions from 1/8 down, ending at 1/16 with a dilated
bottleneck; decoder stages upsample to the skip's explicit size, so odd input sizes work.
About 0.4 M parameters at the default widths.
"""
from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.base import SegmentationModel, upsample_to
from edgekd.models.layers import ConvBNAct, DepthwiseSeparableConv, init_classifier, init_weights, resize_to
from edgekd.models.registry import register_model


class DecoderStage(nn.Module):
    """Upsample to the skip's size, concatenate, then two 3×3 (depthwise-separable) convs."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(DepthwiseSeparableConv(in_ch + skip_ch, out_ch), DepthwiseSeparableConv(out_ch, out_ch))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([resize_to(x, skip.shape[-2:]), skip], dim=1))


class UNetTiny(SegmentationModel):
    """Four-level encoder (1/2 … 1/16) and a three-stage decoder back to 1/2."""

    def __init__(self, num_classes: int, widths: tuple[int, int, int, int] = (16, 32, 128, 320)) -> None:
        super().__init__(num_classes)
        if len(widths) != 4 or min(widths) < 4:
            raise EdgekdError(f"widths={widths} must be four channel counts ≥ 4, e.g. (16, 32, 128, 320)")
        c1, c2, c3, c4 = widths
        self.stage1 = nn.Sequential(ConvBNAct(3, c1, 3, stride=2), ConvBNAct(c1, c1, 3))
        self.stage2 = nn.Sequential(ConvBNAct(c1, c2, 3, stride=2), ConvBNAct(c2, c2, 3))
        self.stage3 = nn.Sequential(DepthwiseSeparableConv(c2, c3, stride=2), DepthwiseSeparableConv(c3, c3))
        self.stage4 = nn.Sequential(
            DepthwiseSeparableConv(c3, c4, stride=2),
            DepthwiseSeparableConv(c4, c4, dilation=2),
            DepthwiseSeparableConv(c4, c4, dilation=4),
        )
        self.up3 = DecoderStage(c4, c3, c3)
        self.up2 = DecoderStage(c3, c2, c2)
        self.up1 = DecoderStage(c2, c1, c1)
        self.logits = nn.Conv2d(c1, num_classes, 1)
        self.output_stride = 16
        self.feature_channels = {"stage1": c1, "stage2": c2, "stage3": c3, "context": c4, "pre_logits": c1}
        init_weights(self)
        init_classifier(self.logits)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s1 = self.stage1(x)
        s2 = self.stage2(s1)
        s3 = self.stage3(s2)
        context = self.stage4(s3)
        pre_logits = self.up1(self.up2(self.up3(context, s3), s2), s1)
        logits = upsample_to(self.logits(pre_logits), x)
        return logits, {"stage1": s1, "stage2": s2, "stage3": s3, "context": context, "pre_logits": pre_logits}


def _create_unet(**kwargs) -> UNetTiny:
    return UNetTiny(**kwargs)


@register_model("unet_tiny", role="student", family="unet")
def unet_tiny(*, num_classes: int = 11, **kwargs) -> UNetTiny:
    """Tiny U-Net baseline (~0.4 M params), output stride 16."""
    return _create_unet(num_classes=num_classes, **kwargs)
