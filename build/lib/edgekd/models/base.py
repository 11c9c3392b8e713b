"""The contract every zoo model follows, so training, distillation and export treat them alike."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F


@dataclass(frozen=True)
class Normalization:
    """How a model wants its input: ``x = (pixel[channel_order] - mean) / std`` on 0..255 pixels.

    Carried by the model (and stored in checkpoints) so that a model brought from another code
    base, with its own quirky pre-processing, evaluates correctly without extra flags.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str = "RGB"

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order {self.channel_order!r} is not one of RGB, BGR")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(tuple(d["mean"]), tuple(d["std"]), d.get("channel_order", "RGB"))

    def apply(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise a uint8 or float batch N×3×H×W of RGB pixels in 0..255."""
        x = images.float()
        if self.channel_order == "BGR":
            x = x.flip(1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


IMAGENET = Normalization(
    mean=(0.485 * 255, 0.456 * 255, 0.406 * 255), std=(0.229 * 255, 0.224 * 255, 0.225 * 255)
)


class SegmentationModel(nn.Module):
    """Base of every zoo model.

    ``forward(x)`` takes a normalised N×3×H×W batch and returns logits N×C×H×W at the input
    resolution (bilinear upsampling inside the graph, so exported models need no post-resize).
    ``forward_features(x)`` also returns named intermediate features for feature distillation;
    ``feature_channels`` names them with their channel counts and ``output_stride`` is the
    coarsest feature's downsampling factor. Any H and W run (stages resize their skip inputs to
    match), but sizes divisible by ``output_stride`` avoid that internal resampling, and export
    warns about the others (ESPNet alone needs multiples of 8 and says so).
    """

    output_stride: int = 8
    normalization: Normalization = IMAGENET

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.feature_channels: dict[str, int] = {}

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[0]


def upsample_to(logits: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``logits`` to the spatial size of ``like`` (converter-friendly)."""
    if not torch.jit.is_tracing() and logits.shape[-2:] == like.shape[-2:]:
        return logits  # (while tracing, always emit the Resize: the shape test would be frozen into the graph)
    return F.interpolate(logits, size=like.shape[-2:], mode="bilinear", align_corners=False)
