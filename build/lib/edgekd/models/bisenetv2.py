"""BiSeNetV2 (Yu et al., "BiSeNet V2: Bilateral Network with Guided Aggregation", IJCV 2021).

A wide-and-shallow detail branch (1/8) and a narrow-and-deep semantic branch (1/32, gather-and-
expand layers and a context-embedding block) merged by the bilateral guided aggregation layer.
The paper's training-only "booster" segmentation heads on the semantic stages are left out:
they cost nothing at inference and edgekd's trainer does not use them (the semantic-stage
features are still exposed for feature distillation). Upsampling is to explicit sizes rather
than the paper's fixed ×4 / ×8 factors so inputs not divisible by 32 keep working.
"""
from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.base import SegmentationModel, upsample_to
from edgekd.models.layers import ConvBNAct, init_classifier, init_weights, resize_to
from edgekd.models.registry import register_model


class StemBlock(nn.Module):
    """Semantic-branch stem: 1/2 conv, then a conv path and a max-pool path to 1/4, concatenated."""

    def __init__(self, out_ch: int = 16) -> None:
        super().__init__()
        self.conv = ConvBNAct(3, out_ch, 3, stride=2)
        self.left = nn.Sequential(ConvBNAct(out_ch, out_ch // 2, 1), ConvBNAct(out_ch // 2, out_ch, 3, stride=2))
        self.right = nn.MaxPool2d(3, stride=2, padding=1)
        self.fuse = ConvBNAct(out_ch * 2, out_ch, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.left(x), self.right(x)], dim=1))


class GatherExpand(nn.Module):
    """Gather-and-expand layer: 3×3 conv, depthwise expansion ×6, 1×1 projection, residual."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expand: int = 6) -> None:
        super().__init__()
        mid = in_ch * expand
        layers: list[nn.Module] = [ConvBNAct(in_ch, in_ch, 3)]
        if stride == 2:
            layers += [ConvBNAct(in_ch, mid, 3, stride=2, groups=in_ch, act=None),
                       ConvBNAct(mid, mid, 3, groups=mid)]
            self.shortcut: nn.Module = nn.Sequential(
                ConvBNAct(in_ch, in_ch, 3, stride=2, groups=in_ch, act=None), ConvBNAct(in_ch, out_ch, 1, act=None)
            )
        else:
            if in_ch != out_ch:
                raise EdgekdError(f"a stride-1 gather-expand layer needs in_ch == out_ch, got {in_ch} → {out_ch}")
            layers.append(ConvBNAct(in_ch, mid, 3, groups=in_ch))
            self.shortcut = nn.Identity()
        layers.append(ConvBNAct(mid, out_ch, 1, act=None))
        self.body = nn.Sequential(*layers)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ContextEmbedding(nn.Module):
    """Global-average context added back to every position, then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.bn = nn.BatchNorm2d(channels)
        self.gap_conv = ConvBNAct(channels, channels, 1)
        self.last = ConvBNAct(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(x + self.gap_conv(self.bn(self.pool(x))))


class GuidedAggregation(nn.Module):
    """Bilateral guided aggregation: each branch gates the other at its own resolution."""

    def __init__(self, ch: int = 128) -> None:
        super().__init__()
        self.detail_keep = nn.Sequential(ConvBNAct(ch, ch, 3, groups=ch, act=None), nn.Conv2d(ch, ch, 1, bias=False))
        self.detail_down = nn.Sequential(ConvBNAct(ch, ch, 3, stride=2, act=None),
                                         nn.AvgPool2d(3, stride=2, padding=1))
        self.semantic_up = ConvBNAct(ch, ch, 3, act=None)
        self.semantic_keep = nn.Sequential(ConvBNAct(ch, ch, 3, groups=ch, act=None), nn.Conv2d(ch, ch, 1, bias=False))
        self.fuse = ConvBNAct(ch, ch, 3)

    def forward(self, detail: torch.Tensor, semantic: torch.Tensor) -> torch.Tensor:
        size = detail.shape[-2:]
        high = self.detail_keep(detail) * torch.sigmoid(resize_to(self.semantic_up(semantic), size))
        down = self.detail_down(detail)
        low = down * torch.sigmoid(self.semantic_keep(resize_to(semantic, down.shape[-2:])))
        return self.fuse(high + resize_to(low, size))


class BiSeNetV2(SegmentationModel):
    """BiSeNetV2 without booster heads; ``width_mult`` scales the detail branch width (λ = 1/4 fixed)."""

    def __init__(self, num_classes: int, width_mult: float = 1.0, head_channels: int = 1024) -> None:
        super().__init__(num_classes)
        if width_mult <= 0:
            raise EdgekdError(f"width_mult={width_mult} must be > 0 (e.g. 0.5, 1.0)")
        d1, d3 = (max(8, int(round(v * width_mult / 8)) * 8) for v in (64, 128))
        s = [max(8, d3 // 8), max(8, d3 // 4), max(16, d3 // 2), d3]  # 16, 32, 64, 128 at width 1
        self.detail = nn.Sequential(
            ConvBNAct(3, d1, 3, stride=2), ConvBNAct(d1, d1, 3),
            ConvBNAct(d1, d1, 3, stride=2), ConvBNAct(d1, d1, 3), ConvBNAct(d1, d1, 3),
            ConvBNAct(d1, d3, 3, stride=2), ConvBNAct(d3, d3, 3), ConvBNAct(d3, d3, 3),
        )
        self.stem = StemBlock(s[0])
        self.stage3 = nn.Sequential(GatherExpand(s[0], s[1], 2), GatherExpand(s[1], s[1]))
        self.stage4 = nn.Sequential(GatherExpand(s[1], s[2], 2), GatherExpand(s[2], s[2]))
        self.stage5 = nn.Sequential(GatherExpand(s[2], s[3], 2), *[GatherExpand(s[3], s[3]) for _ in range(3)])
        self.context = ContextEmbedding(s[3])
        self.aggregation = GuidedAggregation(d3)
        self.head = ConvBNAct(d3, head_channels, 3)
        self.dropout = nn.Dropout(0.1)
        self.logits = nn.Conv2d(head_channels, num_classes, 1)
        self.output_stride = 32
        self.feature_channels = {"detail": d3, "stage3": s[1], "stage4": s[2], "stage5": s[3], "context": s[3],
                                 "aggregated": d3, "pre_logits": head_channels}
        init_weights(self)
        init_classifier(self.logits)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        detail = self.detail(x)
        stage3 = self.stage3(self.stem(x))
        stage4 = self.stage4(stage3)
        stage5 = self.stage5(stage4)
        context = self.context(stage5)
        aggregated = self.aggregation(detail, context)
        pre_logits = self.head(aggregated)
        logits = upsample_to(self.logits(self.dropout(pre_logits)), x)
        features = {"detail": detail, "stage3": stage3, "stage4": stage4, "stage5": stage5, "context": context,
                    "aggregated": aggregated, "pre_logits": pre_logits}
        return logits, features


def _create_bisenetv2(**kwargs) -> BiSeNetV2:
    return BiSeNetV2(**kwargs)


@register_model("bisenetv2", role="student", family="bisenetv2")
def bisenetv2(*, num_classes: int = 11, **kwargs) -> BiSeNetV2:
    """BiSeNetV2 (detail + semantic branches, guided aggregation), output stride 32."""
    return _create_bisenetv2(num_classes=num_classes, **kwargs)
