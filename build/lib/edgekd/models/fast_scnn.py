"""Fast-SCNN (Poudel et al., "Fast-SCNN: Fast Semantic Segmentation Network", BMVC 2019).

Learning-to-downsample (1/8) → global feature extractor (1/32) with pyramid pooling → feature
fusion at 1/8 → classifier. One deliberate change: the paper's pyramid pooling averages into
fixed 1×1, 2×2, 3×3 and 6×6 bins (``AdaptiveAvgPool2d(k)`` with k > 1), which ONNX exports only
for inputs whose size is a multiple of k and which Core ML and TensorRT do not convert
generally. Here the pyramid is global pooling plus average pools that halve the map one, two
and three times (3×3, stride 2), so every branch works on any input size.
"""
from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.base import SegmentationModel, upsample_to
from edgekd.models.layers import ConvBNAct, DepthwiseSeparableConv, InvertedResidual, init_classifier, init_weights, resize_to
from edgekd.models.registry import register_model


def _bottlenecks(in_ch: int, out_ch: int, count: int, stride: int, expand: int = 6) -> nn.Sequential:
    blocks = [InvertedResidual(in_ch, in_ch * expand, out_ch, 3, stride)]
    blocks += [InvertedResidual(out_ch, out_ch * expand, out_ch, 3, 1) for _ in range(count - 1)]
    return nn.Sequential(*blocks)


class PyramidPooling(nn.Module):
    """Context at several scales: global pooling and 2×, 4×, 8× average pools, then 1×1 fuse."""

    def __init__(self, channels: int, out_channels: int, halvings: tuple[int, ...] = (1, 2, 3)) -> None:
        super().__init__()
        inter = channels // 4
        self.global_branch = nn.Sequential(nn.AdaptiveAvgPool2d(1), ConvBNAct(channels, inter, 1))
        self.local_branches = nn.ModuleList(
            nn.Sequential(
                *[nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False) for _ in range(n)],
                ConvBNAct(channels, inter, 1),
            )
            for n in halvings
        )
        self.fuse = ConvBNAct(channels + inter * (1 + len(halvings)), out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        branches = [x, resize_to(self.global_branch(x), size)]
        branches += [resize_to(branch(x), size) for branch in self.local_branches]
        return self.fuse(torch.cat(branches, dim=1))


class FeatureFusion(nn.Module):
    """Adds the 1/8 spatial detail to the upsampled 1/32 context (dilated depthwise on the latter)."""

    def __init__(self, high_res_ch: int, low_res_ch: int, out_ch: int) -> None:
        super().__init__()
        self.low_res = nn.Sequential(
            ConvBNAct(low_res_ch, low_res_ch, 3, dilation=4, groups=low_res_ch),
            ConvBNAct(low_res_ch, out_ch, 1, act=None),
        )
        self.high_res = ConvBNAct(high_res_ch, out_ch, 1, act=None)
        self.act = nn.ReLU(inplace=True)

    def forward(self, high_res: torch.Tensor, low_res: torch.Tensor) -> torch.Tensor:
        low_res = resize_to(low_res, high_res.shape[-2:])
        return self.act(self.high_res(high_res) + self.low_res(low_res))


class FastSCNN(SegmentationModel):
    """Two-branch real-time network whose branches share the first 1/8 downsampling."""

    def __init__(self, num_classes: int, width_mult: float = 1.0) -> None:
        super().__init__(num_classes)
        if width_mult <= 0:
            raise EdgekdError(f"width_mult={width_mult} must be > 0 (e.g. 0.5, 1.0)")
        c = [max(8, int(round(v * width_mult / 8)) * 8) for v in (32, 48, 64, 96, 128)]
        self.learning_to_downsample = nn.Sequential(
            ConvBNAct(3, c[0], 3, stride=2),
            DepthwiseSeparableConv(c[0], c[1], stride=2),
            DepthwiseSeparableConv(c[1], c[2], stride=2),
        )
        self.global_features = nn.Sequential(
            _bottlenecks(c[2], c[2], 3, 2), _bottlenecks(c[2], c[3], 3, 2), _bottlenecks(c[3], c[4], 3, 1)
        )
        self.ppm = PyramidPooling(c[4], c[4])
        self.fusion = FeatureFusion(c[2], c[4], c[4])
        self.classifier = nn.Sequential(DepthwiseSeparableConv(c[4], c[4]), DepthwiseSeparableConv(c[4], c[4]))
        self.dropout = nn.Dropout(0.1)
        self.logits = nn.Conv2d(c[4], num_classes, 1)
        self.output_stride = 32
        self.feature_channels = {"detail": c[2], "stage4": c[4], "context": c[4], "fused": c[4],
                                 "pre_logits": c[4]}
        init_weights(self)
        init_classifier(self.logits)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        detail = self.learning_to_downsample(x)
        stage4 = self.global_features(detail)
        context = self.ppm(stage4)
        fused = self.fusion(detail, context)
        pre_logits = self.classifier(fused)
        logits = upsample_to(self.logits(self.dropout(pre_logits)), x)
        features = {"detail": detail, "stage4": stage4, "context": context, "fused": fused,
                    "pre_logits": pre_logits}
        return logits, features


def _create_fast_scnn(**kwargs) -> FastSCNN:
    return FastSCNN(**kwargs)


@register_model("fast_scnn", role="student", family="fast_scnn")
def fast_scnn(*, num_classes: int = 11, **kwargs) -> FastSCNN:
    """Fast-SCNN (learning to downsample + global features + fusion), output stride 32."""
    return _create_fast_scnn(num_classes=num_classes, **kwargs)
