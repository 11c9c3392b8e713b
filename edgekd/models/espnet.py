"""ESPNet (Mehta et al., "ESPNet: Efficient Spatial Pyramid of Dilated Convolutions for Semantic
Segmentation", ECCV 2018).

Written for edgekd from the paper and from the state-dict key list of the authors' CamVid model, so
that checkpoints of the original code base (github.com/sacmehta/ESPNet, MIT) load with strict key
matching; submodule names follow the original ones (``encoder.level2_0``, ``d1``…``d16``, ``up_l3``…).

Structure: the ESPNet-C encoder (stem at 1/2, one strided ESP module + p ESP blocks at 1/4, one
strided ESP module + q ESP blocks at 1/8, input injection at 1/2 and 1/4) and the light decoder of
the paper's Fig. 4d, which upsamples with three 2x2 stride-2 transposed convolutions back to the
input size. The decoder concatenates 1/8 features upsampled ×2 with 1/4 features (and ×4 with 1/2),
so H and W must be multiples of 8 (``output_stride``); other sizes raise an error naming the fix.
"""
from __future__ import annotations

import torch
from torch import nn

from edgekd.errors import EdgekdError
from edgekd.models.base import Normalization, SegmentationModel
from edgekd.models.registry import register_model

# Original pre-processing: BGR float pixels, minus mean, divided by std, then divided by 255.
ESPNET_CAMVID = Normalization(
    mean=(110.33, 108.41, 105.03), std=(72.13 * 255, 72.69 * 255, 69.90 * 255), channel_order="BGR"
)

_DILATIONS = (1, 2, 4, 8, 16)


class BatchNorm2dNoCounter(nn.BatchNorm2d):
    """BatchNorm2d without the ``num_batches_tracked`` buffer (eps 1e-3, as in the original).

    ESPNet's published weights predate PyTorch 0.4, which added that buffer; leaving it out keeps
    the state dict identical to theirs so strict loading works. The counter only matters with
    ``momentum=None`` (cumulative averaging), which ESPNet does not use.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=1e-3)
        self.num_batches_tracked = None  # a None buffer is skipped by state_dict()

    def reset_running_stats(self) -> None:
        # The base class would also zero the (absent) counter.
        self.running_mean.zero_()
        self.running_var.fill_(1)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args) -> None:  # type: ignore[override]
        # Skip _NormBase's hook that would insert a num_batches_tracked key for old state dicts.
        nn.Module._load_from_state_dict(self, state_dict, prefix, local_metadata, *args)


class CBR(nn.Module):
    """Conv (no bias, 'same' padding) → BatchNorm → PReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.bn = BatchNorm2dNoCounter(out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class BR(nn.Module):
    """BatchNorm → PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = BatchNorm2dNoCounter(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(x))


class Conv(nn.Module):
    """A bias-free convolution kept in a wrapper so its key is ``<name>.conv.weight`` as in the original."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        padding = (kernel_size // 2) * dilation
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, dilation=dilation, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _SpatialPyramid(nn.Module):
    """Reduce → split → transform → merge: the ESP module's core (paper, Sec. 3.1).

    A reduction conv ``c1`` to n = out/5 channels feeds five 3x3 convs with dilations 1..16
    (``d1`` gets the remainder so the widths sum to ``out``); the dilated outputs are summed
    hierarchically (d2, d2+d4, d2+d4+d8, ...) before concatenation to avoid gridding artefacts.
    """

    def __init__(self, in_ch: int, out_ch: int, reduce_kernel: int, stride: int) -> None:
        super().__init__()
        if out_ch < 5:
            raise EdgekdError(f"ESP module width {out_ch} is below 5 (it splits into 5 branches); use more channels/classes")
        n = out_ch // 5
        self.c1 = Conv(in_ch, n, reduce_kernel, stride)
        for d in _DILATIONS:
            setattr(self, f"d{d}", Conv(n, out_ch - 4 * n if d == 1 else n, 3, dilation=d))

    def merge(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.c1(x)
        branches = [getattr(self, f"d{d}")(reduced) for d in _DILATIONS]
        fused = [branches[0], branches[1]]
        for branch in branches[2:]:
            fused.append(fused[-1] + branch)
        return torch.cat(fused, 1)


class ESPDownsampler(_SpatialPyramid):
    """Strided ESP module (original: DownSamplerB): halves H×W, no residual."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(in_ch, out_ch, reduce_kernel=3, stride=2)
        self.bn = BatchNorm2dNoCounter(out_ch)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.merge(x)))


class ESPBlock(_SpatialPyramid):
    """ESP module with an optional identity residual (original: DilatedParllelResidualBlockB)."""

    def __init__(self, in_ch: int, out_ch: int, residual: bool = True) -> None:
        super().__init__(in_ch, out_ch, reduce_kernel=1, stride=1)
        self.bn = BR(out_ch)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        merged = self.merge(x)
        return self.bn(x + merged if self.residual else merged)


class ESPNetEncoder(nn.Module):
    """ESPNet-C: returns the features at 1/2, 1/4 and 1/8 (the decoder taps all three)."""

    def __init__(self, num_classes: int, p: int, q: int) -> None:
        super().__init__()
        self.level1 = CBR(3, 16, 3, 2)
        self.inject = nn.AvgPool2d(3, stride=2, padding=1)  # input injection (original: InputProjectionA)
        # the 1/4 image gets its own (parameter-free) pooling module: one module called twice is one node in
        # torch-pruning's dependency graph, which mis-maps the channel offsets of the stage-2 concatenation
        self.inject_quarter = nn.AvgPool2d(3, stride=2, padding=1)
        self.b1 = BR(16 + 3)
        self.level2_0 = ESPDownsampler(16 + 3, 64)
        self.level2 = nn.ModuleList(ESPBlock(64, 64) for _ in range(p))
        self.b2 = BR(128 + 3)
        self.level3_0 = ESPDownsampler(128 + 3, 128)
        self.level3 = nn.ModuleList(ESPBlock(128, 128) for _ in range(q))
        self.b3 = BR(256)
        self.classifier = Conv(256, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image_half = self.inject(x)
        stage1 = self.b1(torch.cat([self.level1(x), image_half], 1))
        down2 = self.level2_0(stage1)
        stage2 = self.b2(torch.cat([_run(self.level2, down2), down2, self.inject_quarter(image_half)], 1))
        down3 = self.level3_0(stage2)
        stage3 = self.b3(torch.cat([down3, _run(self.level3, down3)], 1))
        return stage1, stage2, stage3


def _run(blocks: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    for block in blocks:
        x = block(x)
    return x


def _up2x(channels: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(channels, channels, 2, stride=2, bias=False)


class ESPNet(SegmentationModel):
    """ESPNet with the paper's light decoder; logits at input size, H and W multiples of 8.

    Features: ``stage1`` (19 ch, 1/2), ``stage2`` (131 ch, 1/4), ``stage3`` (256 ch, 1/8) are the
    encoder's concatenated stage outputs; ``pre_logits`` (num_classes ch, 1/2) is the input of the
    last transposed convolution, which is ESPNet's classifier.
    """

    output_stride = 8
    normalization = ESPNET_CAMVID

    def __init__(self, num_classes: int = 12, *, p: int = 2, q: int = 8) -> None:
        super().__init__(num_classes)
        if p < 1 or q < 1:
            raise EdgekdError(f"ESPNet p={p}, q={q}: both must be at least 1 (the CamVid model uses p=2, q=8)")
        self.encoder = ESPNetEncoder(num_classes, p, q)
        self.level3_C = Conv(128 + 3, num_classes, 1)
        self.br = BatchNorm2dNoCounter(num_classes)
        self.conv = CBR(19 + num_classes, num_classes, 3)
        self.up_l3 = nn.Sequential(_up2x(num_classes))
        self.combine_l2_l3 = nn.Sequential(BR(2 * num_classes), ESPBlock(2 * num_classes, num_classes, residual=False))
        self.up_l2 = nn.Sequential(_up2x(num_classes), BR(num_classes))
        self.classifier = _up2x(num_classes)
        self.feature_channels = {"stage1": 19, "stage2": 131, "stage3": 256, "pre_logits": num_classes}

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        _check_size(x)
        stage1, stage2, stage3 = self.encoder(x)
        quarter = self.up_l3(self.br(self.encoder.classifier(stage3)))
        half = self.up_l2(self.combine_l2_l3(torch.cat([self.level3_C(stage2), quarter], 1)))
        pre_logits = self.conv(torch.cat([half, stage1], 1))
        logits = self.classifier(pre_logits)
        return logits, {"stage1": stage1, "stage2": stage2, "stage3": stage3, "pre_logits": pre_logits}


def _check_size(x: torch.Tensor) -> None:
    height, width = x.shape[-2:]
    if isinstance(height, int) and isinstance(width, int) and (height % 8 or width % 8):
        raise EdgekdError(
            f"ESPNet needs H and W divisible by 8, got {height}x{width}: resize or pad the input "
            f"(e.g. to {_round8(height)}x{_round8(width)})"
        )


def _round8(n: int) -> int:
    return max(8, (n + 4) // 8 * 8)


@register_model("espnet_p2q8", role="teacher", family="espnet")
def espnet_p2q8(*, num_classes: int = 12, **kw) -> ESPNet:
    """ESPNet p=2, q=8 (0.36 M params), the configuration of the authors' CamVid model (11 classes + void)."""
    return ESPNet(num_classes, **{"p": 2, "q": 8, **kw})
