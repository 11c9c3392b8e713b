"""End-to-end frame time: camera frame -> resize -> normalise -> inference -> argmax -> upsample -> overlay.

An AR app does not feed a model a ready tensor: it gets a camera frame (e.g. 1280×720 RGB),
resizes and normalises it, runs the model, takes the class map back to camera size and draws
it. docs/bench.md reports those steps at ~12 ms of a 54 ms CGNet frame on this CPU, so they are
timed per stage here, with every buffer allocated once (OpenCV ``dst=`` and numpy ``out=``).
The camera-paced run then offers frames at the profile's FPS and counts the deadlines missed.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import cv2
import numpy as np

STAGES = ("resize", "normalize", "inference", "argmax", "upsample", "overlay")


def palette(size: int = 256, seed: int = 7) -> np.ndarray:
    """A fixed random colour per class id (uint8 size×3)."""
    return np.random.default_rng(seed).integers(0, 256, size=(size, 3), dtype=np.uint8)


def synthetic_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An AR-like RGB scene (sky, buildings, road, objects, sensor noise) when no dataset frame is given."""
    rng = np.random.default_rng(seed)
    frame = np.empty((height, width, 3), np.uint8)
    sky = np.linspace(230, 150, height // 2, dtype=np.float32)[:, None]
    frame[: height // 2] = np.stack([sky * 0.6, sky * 0.8, sky], -1).astype(np.uint8)
    frame[height // 2:] = (90, 90, 95)
    for _ in range(12):
        x, w = int(rng.integers(0, width)), int(rng.integers(width // 20, width // 6))
        top = int(rng.integers(height // 6, height // 2))
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        cv2.rectangle(frame, (x, top), (x + w, int(height * 0.6)), colour, -1)
    for _ in range(6):
        centre = (int(rng.integers(0, width)), int(rng.integers(height // 2, height)))
        cv2.circle(frame, centre, int(rng.integers(height // 30, height // 8)), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    noise = rng.integers(-6, 7, size=frame.shape, dtype=np.int16)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


class FramePipeline:
    """The per-frame work of an AR segmentation overlay, with pre-allocated buffers."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], sync: Callable[[], None], input_hw: tuple[int, int],
                 mean: tuple[float, ...], std: tuple[float, ...], channel_order: str, camera_hw: tuple[int, int]) -> None:
        h, w = input_hw
        ch, cw = camera_hw
        self.run, self.sync = run, sync
        self.input_hw, self.camera_hw = (h, w), (ch, cw)
        self.bgr = channel_order.upper() == "BGR"
        self.mean = np.asarray(mean, np.float32)
        self.inv_std = (1.0 / np.asarray(std, np.float32)).astype(np.float32)
        self._resized = np.empty((h, w, 3), np.uint8)
        self._swapped = np.empty((h, w, 3), np.uint8)
        self._work = np.empty((h, w, 3), np.float32)
        self.x = np.empty((1, 3, h, w), np.float32)
        self._classes64 = np.empty((h, w), np.int64)
        self._classes = np.empty((h, w), np.uint8)
        self._classes_cam = np.empty((ch, cw), np.uint8)
        self._colour = np.empty((ch, cw, 3), np.uint8)
        self.overlay = np.empty((ch, cw, 3), np.uint8)
        self.palette = palette()
        self._lut = np.ascontiguousarray(self.palette.reshape(256, 1, 3))
        self.times_ns = np.zeros(len(STAGES), np.int64)
        self.stages = STAGES
        self._step: Callable[[], np.ndarray] | None = None

    def use_step(self, step: Callable[[], np.ndarray]) -> None:
        """Infer through ``step`` (``session.bind(self.x)``: input bound to ``self.x``, output a view)."""
        self._step = step

    def preprocess(self, frame: np.ndarray) -> np.ndarray:
        """Resize + normalise into ``self.x`` (the model's N×3×H×W float32 input)."""
        self._resize(frame)
        self._normalize()
        return self.x

    def _resize(self, frame: np.ndarray) -> None:
        cv2.resize(frame, (self.input_hw[1], self.input_hw[0]), dst=self._resized, interpolation=cv2.INTER_LINEAR)

    def _normalize(self) -> None:
        src = self._resized
        if self.bgr:
            cv2.cvtColor(src, cv2.COLOR_RGB2BGR, dst=self._swapped)
            src = self._swapped
        np.subtract(src, self.mean, out=self._work)
        np.multiply(self._work, self.inv_std, out=self._work)
        self.x[0] = self._work.transpose(2, 0, 1)

    def _argmax(self, logits: np.ndarray) -> None:
        scores = logits[0]
        if scores.shape[-2:] == self.input_hw:
            np.argmax(scores, axis=0, out=self._classes64)
            np.copyto(self._classes, self._classes64, casting="unsafe")
        else:  # logits not at input size (the contract says they should be): bring the class map there
            small = np.argmax(scores, axis=0).astype(np.uint8)
            cv2.resize(small, (self.input_hw[1], self.input_hw[0]), dst=self._classes, interpolation=cv2.INTER_NEAREST)

    def _upsample(self) -> None:
        cv2.resize(self._classes, (self.camera_hw[1], self.camera_hw[0]), dst=self._classes_cam, interpolation=cv2.INTER_NEAREST)

    def _overlay(self, frame: np.ndarray) -> None:
        cv2.applyColorMap(self._classes_cam, self._lut, dst=self._colour)  # 5× faster than np.take at 720p
        cv2.addWeighted(frame, 0.5, self._colour, 0.5, 0.0, dst=self.overlay)

    def process(self, frame: np.ndarray) -> np.ndarray:
        """One frame end to end; per-stage times land in ``self.times_ns`` (order of ``STAGES``)."""
        clock, t = time.perf_counter_ns, self.times_ns
        t0 = clock()
        self._resize(frame)
        t1 = clock()
        self._normalize()
        t2 = clock()
        logits = self._step() if self._step is not None else self.run(self.x)
        self.sync()
        t3 = clock()
        self._argmax(logits)
        t4 = clock()
        self._upsample()
        t5 = clock()
        self._overlay(frame)
        t6 = clock()
        t[0], t[1], t[2], t[3], t[4], t[5] = t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5
        return self.overlay


FUSED_STAGES = ("input", "inference", "upsample", "overlay")
FUSED_KIND = "frame_to_classes"


def fused_contract(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The ``io_contract`` of an artifact exported with ``--embed-pre-post`` (None for a plain one).

    Read from the manifest dict here rather than through ``edgekd.export`` so the worker stays
    free of PyTorch."""
    contract = manifest.get("io_contract")
    return contract if isinstance(contract, dict) and contract.get("kind") == FUSED_KIND else None


class FusedFramePipeline:
    """The per-frame work when resize, normalisation and argmax are inside the model graph.

    The camera frame (uint8 H×W×3 at camera size) is copied into the buffer bound as the model's
    input ("input": an app that has the camera write there saves it), the model returns the uint8
    class map, which is brought to camera size only when the graph left it at model size
    ("upsample", else ~0), then the same colour overlay as ``FramePipeline``.
    """

    def __init__(self, session: Any, contract: dict[str, Any], camera_hw: tuple[int, int]) -> None:
        frame_shape = [int(d) for d in contract["input"]["shape"]]
        if tuple(frame_shape[1:3]) != tuple(camera_hw):
            raise ValueError(f"the fused artifact takes {frame_shape[1]}x{frame_shape[2]} frames, the camera gives "
                             f"{camera_hw[0]}x{camera_hw[1]}")
        self.camera_hw = tuple(camera_hw)
        self.input_hw = tuple(contract["network_input_hw"])
        self.x = np.zeros(frame_shape, np.uint8)
        self.sync = session.sync
        self._step = session.bind(self.x)
        self._classes_cam = np.empty(self.camera_hw, np.uint8)
        self._colour = np.empty((*self.camera_hw, 3), np.uint8)
        self.overlay = np.empty((*self.camera_hw, 3), np.uint8)
        self._lut = np.ascontiguousarray(palette().reshape(256, 1, 3))
        self.times_ns = np.zeros(len(FUSED_STAGES), np.int64)
        self.stages = FUSED_STAGES

    def classes(self, frame: np.ndarray) -> np.ndarray:
        """The class map at camera size for one frame (uint8 H×W)."""
        np.copyto(self.x[0], frame)
        out = self._step()
        self.sync()
        return self._to_camera(np.asarray(out).reshape(out.shape[-2:]))

    def _to_camera(self, classes: np.ndarray) -> np.ndarray:
        if classes.shape == self.camera_hw:
            return classes
        cv2.resize(classes.astype(np.uint8, copy=False), (self.camera_hw[1], self.camera_hw[0]), dst=self._classes_cam,
                   interpolation=cv2.INTER_NEAREST)
        return self._classes_cam

    def process(self, frame: np.ndarray) -> np.ndarray:
        clock, t = time.perf_counter_ns, self.times_ns
        t0 = clock()
        np.copyto(self.x[0], frame)
        t1 = clock()
        out = self._step()
        self.sync()
        t2 = clock()
        classes = self._to_camera(out.reshape(out.shape[-2:]))
        t3 = clock()
        cv2.applyColorMap(classes, self._lut, dst=self._colour)
        cv2.addWeighted(frame, 0.5, self._colour, 0.5, 0.0, dst=self.overlay)
        t4 = clock()
        t[0], t[1], t[2], t[3] = t1 - t0, t2 - t1, t3 - t2, t4 - t3
        return self.overlay


def measure_e2e(pipeline: FramePipeline | FusedFramePipeline, frame: np.ndarray, *, duration_s: float,
                min_frames: int = 10, max_frames: int = 10_000) -> dict[str, Any]:
    """Median ms per stage and of the whole frame, back to back (no pacing)."""
    stages = pipeline.stages
    per_frame = np.empty((max_frames, len(stages)), np.int64)
    end = time.perf_counter_ns() + int(duration_s * 1e9)
    n = 0
    while n < max_frames and (n < min_frames or time.perf_counter_ns() < end):
        pipeline.process(frame)
        per_frame[n] = pipeline.times_ns
        n += 1
    ms = per_frame[:n] / 1e6
    total = ms.sum(axis=1)
    infer = stages.index("inference")
    from edgekd.core.timing import quantile_ci

    return {
        "camera_hw": list(pipeline.camera_hw), "input_hw": list(pipeline.input_hw), "frames": n,
        "fused": stages is FUSED_STAGES,
        "stages_ms_p50": {s: float(np.median(ms[:, i])) for i, s in enumerate(stages)},
        "frame_ms_p50": float(np.median(total)), "frame_ms_p90": float(np.percentile(total, 90)),
        "frame_ms_p50_ci": quantile_ci(np.sort(total), 0.5),
        "pre_ms_p50": float(np.median(ms[:, :infer].sum(axis=1))),
        "post_ms_p50": float(np.median(ms[:, infer + 1:].sum(axis=1))),
    }


def _wait_until(t_ns: int) -> None:
    """Sleep most of the way, then spin: ``time.sleep`` alone overshoots by up to a scheduler tick."""
    remaining = t_ns - time.perf_counter_ns()
    if remaining > 2_000_000:
        time.sleep((remaining - 1_000_000) / 1e9)
    while time.perf_counter_ns() < t_ns:
        pass


def camera_paced(pipeline: FramePipeline, frame: np.ndarray, *, target_fps: float, deadline_ms: float,
                 duration_s: float) -> dict[str, Any]:
    """Frames arrive every 1/target_fps s; a busy pipeline takes the newest frame and drops the rest.

    A frame misses its deadline when it is dropped or its result (arrival -> overlay drawn) takes
    longer than ``deadline_ms``. Jitter is the standard deviation of the intervals between results.
    """
    period = 1e9 / target_fps
    clock = time.perf_counter_ns
    t0 = clock() + int(period)
    end = t0 + int(duration_s * 1e9)
    last, dropped, late = -1, 0, 0
    latencies, completions = [], []
    while True:
        now = clock()
        if now >= end:
            break
        k = math.floor((now - t0) / period)
        if k <= last:
            _wait_until(t0 + int((last + 1) * period))
            continue
        dropped += k - last - 1
        pipeline.process(frame)
        done = clock()
        latency_ms = (done - (t0 + k * period)) / 1e6
        latencies.append(latency_ms)
        completions.append(done)
        late += latency_ms > deadline_ms
        last = k
    offered = last + 1
    intervals = np.diff(np.asarray(completions, np.float64)) / 1e6
    return {
        "target_fps": target_fps, "deadline_ms": deadline_ms, "seconds": duration_s,
        "frames_offered": offered, "frames_processed": len(latencies), "frames_dropped": dropped, "frames_late": int(late),
        "deadline_miss_pct": 100.0 * (dropped + late) / offered if offered else None,
        "latency_ms_p50": float(np.median(latencies)) if latencies else None,
        "latency_ms_p99": float(np.percentile(latencies, 99)) if latencies else None,
        "jitter_ms": float(intervals.std(ddof=1)) if intervals.size > 1 else None,
        "achieved_fps": len(latencies) / duration_s,
    }
