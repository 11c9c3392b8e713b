"""Joint geometric augmentation on batches of tensors, for distillation.

Distillation applies the *same* random scale, crop and flip to the image, the label map and,
when the teacher is cached, the teacher's stored logits — so cached logits stay aligned with
the pixels the student sees. Doing it on tensors keeps one code path for live and cached
teachers. (Colour jitter is deliberately absent: cached logits were computed on the
un-jittered image, and a teacher that sees other colours than its cache would be a different
target.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class JointAugment:
    crop_size: tuple[int, int]
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    ignore_index: int = 255

    def __call__(self, generator: torch.Generator, image: torch.Tensor, mask: torch.Tensor, logits: torch.Tensor | None = None):
        """image N×3×H×W (float, 0..255), mask N×H×W (int64), logits N×C×H×W or None."""
        n, _, h, w = image.shape
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * torch.rand((), generator=generator).item()
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        # nearest-exact samples pixel centres like bilinear with align_corners=False (plain "nearest" shifts by half a pixel)
        mask = F.interpolate(mask[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()
        if logits is not None:
            logits = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
        image, mask, logits = self._pad(image, mask, logits)
        top, left = self._offsets(generator, image.shape[-2:])
        ch, cw = self.crop_size
        crop = (slice(None), slice(None), slice(top, top + ch), slice(left, left + cw))
        image, mask = image[crop], mask[:, top : top + ch, left : left + cw]
        logits = logits[crop] if logits is not None else None
        if self.flip and torch.rand((), generator=generator).item() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
            logits = logits.flip(-1) if logits is not None else None
        return image.contiguous(), mask.contiguous(), (logits.contiguous() if logits is not None else None)

    def _pad(self, image, mask, logits):
        ch, cw = self.crop_size
        ph, pw = max(0, ch - image.shape[-2]), max(0, cw - image.shape[-1])
        if ph == 0 and pw == 0:
            return image, mask, logits
        pad = (0, pw, 0, ph)
        image = F.pad(image, pad, value=0.0)
        mask = F.pad(mask, pad, value=self.ignore_index)
        # Padded teacher logits are never used: their pixels carry the ignore label.
        logits = F.pad(logits, pad, value=0.0) if logits is not None else None
        return image, mask, logits

    def _offsets(self, generator, size) -> tuple[int, int]:
        h, w = size
        ch, cw = self.crop_size
        top = int(torch.randint(0, h - ch + 1, (), generator=generator))
        left = int(torch.randint(0, w - cw + 1, (), generator=generator))
        return top, left


@dataclass(frozen=True)
class PhotometricAugment:
    """Per-image brightness, contrast and saturation jitter on an N×3×H×W float batch (0..255).

    Only valid when the teacher runs live on the jittered image ("function matching", Beyer et
    al., CVPR 2022): teacher and student then see the same pixels, so the target stays consistent.
    Factors are drawn uniformly from [1 − strength, 1 + strength].
    """

    strength: float = 0.3

    def __call__(self, generator: torch.Generator, image: torch.Tensor) -> torch.Tensor:
        if self.strength <= 0:
            return image
        n = image.shape[0]

        def factors() -> torch.Tensor:
            u = torch.rand(n, generator=generator)
            return (1 - self.strength + 2 * self.strength * u).to(image.device).view(n, 1, 1, 1)

        image = image * factors()  # brightness
        mean = image.mean(dim=(1, 2, 3), keepdim=True)
        image = (image - mean) * factors() + mean  # contrast
        grey = (0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3])
        image = (image - grey) * factors() + grey  # saturation
        return image.clamp(0, 255)


def cutmix(generator: torch.Generator, image: torch.Tensor, mask: torch.Tensor, probability: float):
    """CutMix between the frames of a batch (Yun et al., ICCV 2019), labels pasted with their pixels.

    With ``probability`` a rectangle covering 10–50% of the area is copied from the batch rolled by
    one frame; for segmentation the pasted labels stay exact per pixel, and a live teacher sees the
    mixed frame as the student does.
    """
    if probability <= 0 or image.shape[0] < 2 or torch.rand((), generator=generator).item() >= probability:
        return image, mask
    h, w = image.shape[-2:]
    area = 0.1 + 0.4 * torch.rand((), generator=generator).item()
    aspect = 0.5 + torch.rand((), generator=generator).item()
    ch = min(h, max(1, round((area * h * w * aspect) ** 0.5)))
    cw = min(w, max(1, round((area * h * w / aspect) ** 0.5)))
    top = int(torch.randint(0, h - ch + 1, (), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (), generator=generator))
    image, mask = image.clone(), mask.clone()
    donor_image, donor_mask = image.roll(1, 0), mask.roll(1, 0)
    image[..., top : top + ch, left : left + cw] = donor_image[..., top : top + ch, left : left + cw]
    mask[..., top : top + ch, left : left + cw] = donor_mask[..., top : top + ch, left : left + cw]
    return image, mask
