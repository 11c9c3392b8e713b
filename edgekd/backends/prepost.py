"""The frame -> class-map contract of an artifact exported with ``--embed-pre-post``.

On a CPU an AR frame's pre/post-processing (resize, normalise, argmax, bring the class map back)
is a large share of the frame, and the 11-class FP32 logits at 360×480 are 7.6 MB per frame where
the uint8 class map is 0.17 MB. A fused artifact takes the camera's uint8 H×W×3 frame (NHWC,
channel order stated) and returns the uint8 class map: resize to the network input (bilinear,
half-pixel centres, no antialias — what ``cv2.resize(INTER_LINEAR)`` does), normalisation and
argmax run inside the graph; the map is optionally resized back to the camera size (nearest,
what ``cv2.INTER_NEAREST`` does). Each backend builds it with its own tools (ONNX ops,
OpenVINO's PrePostProcessor, Core ML's image input); this module holds what they share and what
the manifest records (``io_contract``; the bench reads it as ``edgekd.bench.e2e.fused_contract``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekd.errors import EdgekdError

KIND = "frame_to_classes"  # edgekd.bench.e2e.FUSED_KIND
CHANNEL_ORDERS = ("RGB", "BGR")
CLASS_MAP_SIZES = ("network", "camera")
FOLDER_SUFFIX = "-fused"


@dataclass(frozen=True)
class FrameContract:
    """What a fused graph takes and returns; ``mean``/``std`` are in the network's channel order, 0..255 units."""

    camera_hw: tuple[int, int]
    network_hw: tuple[int, int]
    channel_order: str  # of the camera frames fed to the graph
    model_channel_order: str  # what the network was trained on (normalization.channel_order)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    class_map_at: str  # "network" | "camera"
    num_classes: int

    @classmethod
    def make(cls, *, camera_hw: tuple[int, int] | None, network_hw: tuple[int, int], channel_order: str,
             normalization: dict[str, Any], class_map_at: str, num_classes: int) -> "FrameContract":
        """Checked construction: the CLI values become a contract or an error naming the bad value."""
        order = str(channel_order).upper()
        if order not in CHANNEL_ORDERS:
            raise EdgekdError(f"--channel-order {channel_order!r} is not one of bgr, rgb (the camera frames' channel order)")
        if class_map_at not in CLASS_MAP_SIZES:
            raise EdgekdError(f"--class-map-size {class_map_at!r} is not one of {', '.join(CLASS_MAP_SIZES)}")
        if num_classes > 256:
            raise EdgekdError(f"--embed-pre-post returns a uint8 class map; {num_classes} classes do not fit (at most 256)")
        camera = tuple(int(v) for v in (camera_hw or network_hw))
        if min(camera) < 1:
            raise EdgekdError(f"--camera-size {camera[0]}x{camera[1]} must be positive")
        return cls(camera, tuple(int(v) for v in network_hw), order, str(normalization.get("channel_order", "RGB")).upper(),
                   tuple(float(v) for v in normalization["mean"]), tuple(float(v) for v in normalization["std"]),
                   class_map_at, int(num_classes))

    @property
    def swap_channels(self) -> bool:
        """The graph reverses the channel axis: the camera's order is not the network's."""
        return self.channel_order != self.model_channel_order

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.camera_hw if self.class_map_at == "camera" else self.network_hw

    def to_manifest(self, *, built_with: str, output_dtype: str = "uint8", input_name: str = "frame",
                    output_name: str = "classes") -> dict[str, Any]:
        """The manifest's ``io_contract``: everything an app needs to feed the graph and read its answer."""
        ch, cw = self.camera_hw
        oh, ow = self.output_hw
        return {
            "kind": KIND, "built_with": built_with,
            "input": {"name": input_name, "dtype": "uint8", "layout": "NHWC", "shape": [1, ch, cw, 3],
                      "channel_order": self.channel_order, "range": "0..255", "meaning": "the camera frame, unnormalised"},
            "network_input_hw": list(self.network_hw),
            "inside": {"resize": f"{ch}x{cw} -> {self.network_hw[0]}x{self.network_hw[1]} bilinear, half-pixel centres, no antialias",
                       "channel_swap": self.swap_channels, "normalization": {"mean": list(self.mean), "std": list(self.std),
                       "channel_order": self.model_channel_order, "formula": "(pixel - mean) / std, after the resize"},
                       "argmax": "over the class axis", "class_map_resize": "nearest to the camera size" if self.class_map_at == "camera" else None},
            "output": {"name": output_name, "dtype": output_dtype, "layout": "NHW", "shape": [1, oh, ow],
                       "size": self.class_map_at, "meaning": f"class index per pixel (0..{self.num_classes - 1})"},
        }
