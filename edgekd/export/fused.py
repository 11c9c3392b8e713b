"""``--embed-pre-post``: checks, manifest fields and parity of fused (frame -> class map) artifacts.

The graph itself is each backend's (``Backend.embed_pre_post``); the contract is
``edgekd.backends.prepost.FrameContract``. Parity compares the fused artifact with the unfused
app pipeline on real images: the same camera frames (dataset images resized to the camera size)
go once through the fused graph and once through what an app does without it — ``cv2.resize``
(bilinear) to the network input, numpy normalisation, the PyTorch FP32 network, argmax, and
``cv2.resize`` (nearest) back when the map is at camera size — and the class maps are compared
pixel by pixel (plus both mIoUs against the labels).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.base import Backend, BackendUnavailable
from edgekd.backends.prepost import CHANNEL_ORDERS, CLASS_MAP_SIZES, FrameContract
from edgekd.backends.registry import backends_where
from edgekd.errors import EdgekdError


@dataclass(frozen=True)
class EmbedRequest:
    """The user's ``--embed-pre-post`` choices, before the network size of each artifact is known."""

    camera_hw: tuple[int, int] | None
    channel_order: str
    class_map_at: str

    def contract(self, network_hw: tuple[int, int], meta: dict[str, Any]) -> FrameContract:
        return FrameContract.make(camera_hw=self.camera_hw, network_hw=network_hw, channel_order=self.channel_order,
                                  normalization=meta["normalization"], class_map_at=self.class_map_at,
                                  num_classes=int(meta["num_classes"]))


def check_embed(request: EmbedRequest, backends: list[Backend], dynamic_batch: bool) -> EmbedRequest:
    """Refuse what a fused export cannot do before anything is written."""
    if str(request.channel_order).upper() not in CHANNEL_ORDERS:
        raise EdgekdError(f"--channel-order {request.channel_order!r} is not one of bgr, rgb (the camera frames' channel order)")
    if request.class_map_at not in CLASS_MAP_SIZES:
        raise EdgekdError(f"--class-map-size {request.class_map_at!r} is not one of {', '.join(CLASS_MAP_SIZES)}")
    if dynamic_batch:
        raise EdgekdError("--embed-pre-post takes one camera frame per call: drop --dynamic-batch")
    unable = [b.name for b in backends if not b.fuses_pre_post()]
    if unable:
        raise EdgekdError(f"--embed-pre-post is not available for {', '.join(unable)}; it is for "
                          f"{', '.join(backends_where(Backend.fuses_pre_post))} — export those separately without it")
    return request


def manifest_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The backend's fields plus what the manifest says about the graph's own inputs and outputs
    (``input_shape`` stays the network's input inside the graph)."""
    io_contract = fields["io_contract"]
    return {**fields, "input_dtype": "uint8",
            "input_layout": "NHWC uint8 camera frame (io_contract.input); input_shape is the network's input inside the graph",
            "output_shape": io_contract["output"]["shape"], "output_dtype": io_contract["output"]["dtype"]}


def load_frames(source: Any, split: str, count: int, contract: FrameContract):
    """Real labelled images at the camera size (uint8 RGB N×3×H×W, masks N×H×W)."""
    from edgekd.export.inputs import load_sample

    return load_sample(source, split, count, contract.camera_hw)


def unfused_classes(model: Any, frame_rgb: np.ndarray, contract: FrameContract) -> np.ndarray:
    """The unfused app pipeline on one RGB H×W×3 frame: cv2 resize, numpy normalise, PyTorch, argmax, nearest back."""
    import cv2
    import torch

    h, w = contract.network_hw
    resized = cv2.resize(frame_rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    if contract.model_channel_order == "BGR":
        resized = resized[..., ::-1]
    x = (resized.astype(np.float32) - np.asarray(contract.mean, np.float32)) / np.asarray(contract.std, np.float32)
    previous = torch.set_flush_denormal(True)  # as edgekd.parity.reference_logits: subnormal weights crawl otherwise
    try:
        with torch.inference_mode():
            logits = model.eval()(torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None])))
    finally:
        if previous:
            torch.set_flush_denormal(False)
    classes = logits.argmax(1)[0].numpy().astype(np.uint8)
    if contract.class_map_at == "camera":
        classes = cv2.resize(classes, (contract.camera_hw[1], contract.camera_hw[0]), interpolation=cv2.INTER_NEAREST)
    return classes


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def fused_parity(backend: Backend, folder: Path, sample: Any, reference_model: Any, contract: FrameContract,
                 threshold: float, runtime_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Class-map agreement of the fused artifact with the unfused pipeline on ``sample``'s frames."""
    import cv2

    from edgekd.metrics import ConfusionMatrix

    try:
        session = backend.load(folder, **(runtime_options or {}))
    except BackendUnavailable as err:
        return {"status": "unavailable", "reason": str(err)}
    agree, pixels = 0, 0
    cm_fused, cm_plain = (ConfusionMatrix(sample.num_classes, sample.ignore_index) for _ in range(2))
    for pixels_chw, mask in zip(sample.pixels, sample.masks):
        rgb = np.ascontiguousarray(pixels_chw.transpose(1, 2, 0))
        frame = np.ascontiguousarray(rgb[..., ::-1]) if contract.channel_order == "BGR" else rgb
        fused = np.asarray(session.run(frame[None]))[0]
        plain = unfused_classes(reference_model, rgb, contract)
        agree += int((fused == plain).sum())
        pixels += plain.size
        label = mask if mask.shape == fused.shape else cv2.resize(mask.astype(np.uint8), fused.shape[::-1], interpolation=cv2.INTER_NEAREST)
        cm_fused.update(fused.astype(np.int64)[None], label.astype(np.int64)[None])
        cm_plain.update(plain.astype(np.int64)[None], label.astype(np.int64)[None])
    agreement = agree / pixels
    fused_miou, plain_miou = _number(cm_fused.miou()), _number(cm_plain.miou())
    result = {"status": "ok" if agreement >= threshold else "below_threshold", "kind": "fused_vs_unfused",
              "images": int(len(sample.pixels)), "class_map_agreement": agreement, "argmax_agreement": agreement,
              "max_abs_logit_diff": None, "miou_unfused": plain_miou, "miou_fused": fused_miou,
              "miou_delta": None if fused_miou is None or plain_miou is None else fused_miou - plain_miou,
              "threshold": threshold, "runtime_options": runtime_options or {},
              "reference": "unfused app pipeline: cv2.resize bilinear -> numpy normalise -> PyTorch FP32 -> argmax"
                           + (" -> cv2.resize nearest" if contract.class_map_at == "camera" else ""),
              "frames": f"{sample.description['dataset_name']} {sample.description['split']} images resized to "
                        f"{contract.camera_hw[0]}x{contract.camera_hw[1]} (the camera frames)", "ran_as": session.describe()}
    if agreement < threshold:
        result["warning"] = (f"fused class map agrees with the unfused pipeline on {agreement:.4f} of pixels, below {threshold}: "
                             "check the channel order, normalisation and resize of the embedded pre-processing")
    return result


def fused_parity_block(backend: Backend, precision: str, folder: Path, ctx: Any, contract: FrameContract) -> dict[str, Any]:
    """The manifest's ``parity`` for a fused artifact, from the export context (``pipeline._Context``):
    its parity images at the camera size (reloaded when that is not the network's), the backend's
    first parity run (OpenVINO: the f32 hint, isolating what the fusion did)."""
    from edgekd.parity import skipped

    if ctx.val is None:
        return skipped(ctx.parity_reason)
    same = tuple(contract.camera_hw) == tuple(ctx.input_size)
    sample = ctx.val if same else load_frames(ctx.parity_source, ctx.parity_split, ctx.parity_count, contract)
    name, options = next(iter(backend.parity_runs(precision).items()))
    return {**fused_parity(backend, folder, sample, ctx.reference_model, contract, ctx.parity_threshold, options), "variant": name}
