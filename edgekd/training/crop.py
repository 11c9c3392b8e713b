"""The training crop, checked against the size of the images it is cut from.

A crop larger than the images is padded with the ignore label: those pixels cost a forward and
backward pass and teach nothing. The old fixed default, 360x480 (CamVid's frame), made a 96x128
dataset train about 5x slower for the same result, without a word.

So when the user gives no crop, the default is 360x480 *clipped to the images' size* (per side),
rather than the images' size itself: CamVid runs keep exactly the crop they always had, small
datasets get their own size, and large images (e.g. 1024x2048 Cityscapes frames) still train on
360x480 crops instead of suddenly on whole frames, which would change memory and speed just as
silently. The clipped default prints nothing (it is what the user would pick; the crop used is the
checkpoint's ``input_size`` and is in its recorded config). A crop the user *did* give is kept (never
silently change what was asked for), with one warning line when it is larger than the images.
"""
from __future__ import annotations

import sys

DEFAULT_CROP = (360, 480)


def resolve_crop_size(crop_size: tuple[int, int] | None, image_hw: tuple[int, int],
                      what: str = "train images") -> tuple[tuple[int, int], str | None]:
    """(the crop to train with, a one-line warning to print, or None).

    ``crop_size`` None means "not given": the default clipped to ``image_hw``. ``image_hw`` is the
    size the crop is cut from at scale 1 (the first train image, or distill's ``--image-size``).
    """
    h, w = (int(v) for v in image_hw)
    if crop_size is None:
        return (min(DEFAULT_CROP[0], h), min(DEFAULT_CROP[1], w)), None
    ch, cw = (int(v) for v in crop_size)
    if ch <= h and cw <= w:
        return (ch, cw), None
    padded = 1.0 - min(ch, h) * min(cw, w) / (ch * cw)
    fit = (min(ch, h), min(cw, w))
    return (ch, cw), (f"warning: --crop-size {ch}x{cw} is larger than the {what} ({h}x{w}): at scale 1 "
                      f"{100 * padded:.0f} % of each crop is ignore-label padding (compute that trains nothing); "
                      f"pass --crop-size {fit[0]}x{fit[1]} (or omit it)")


def first_image_hw(dataset) -> tuple[int, int] | None:
    """The size of the split's first image, or None when it cannot be read (or the split is empty).

    The probe is advisory: an unreadable image is left for the loader to report, with the context
    it gives (which worker read it), rather than raised here a step earlier in another form.
    """
    from edgekd.errors import EdgekdError

    try:
        return tuple(dataset.read_pair(0)[0].shape[:2]) if len(dataset) else None
    except EdgekdError:
        return None


def apply_crop_size(cfg, image_hw: tuple[int, int] | None, what: str = "train images") -> None:
    """Set ``cfg.crop_size`` from :func:`resolve_crop_size`, printing its line once (main process only).

    ``image_hw`` None (size unknown): the given crop, else the default, unchecked."""
    from edgekd.training.runtime import is_main_process

    if image_hw is None:
        cfg.crop_size = tuple(cfg.crop_size) if cfg.crop_size is not None else DEFAULT_CROP
        return
    cfg.crop_size, line = resolve_crop_size(cfg.crop_size, image_hw, what)
    if line and is_main_process():
        print(line, file=sys.stderr)
