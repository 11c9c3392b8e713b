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
