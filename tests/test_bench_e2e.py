"""End-to-end frame pipeline, camera pacing and backend accuracy, on numpy stand-ins for a session.

A fake ``run`` is fine here: these tests check the harness's own arithmetic (normalisation,
argmax, pacing, the accuracy protocol); the real runtimes are exercised in test_bench_run.py.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgekd.bench.accuracy import add_reference_delta, evaluate_session, logits_to_labels
from edgekd.bench.e2e import STAGES, FramePipeline, camera_paced, measure_e2e, synthetic_frame

MEAN, STD = (100.0, 110.0, 120.0), (50.0, 60.0, 70.0)


def colour_logits(x: np.ndarray) -> np.ndarray:
    """3 'classes' = which normalised channel is largest (a deterministic stand-in for a model)."""
    return np.ascontiguousarray(x.copy())


def test_normalisation_matches_the_manifest_formula() -> None:
    frame = synthetic_frame(72, 128, seed=1)
    for order in ("RGB", "BGR"):
        pipe = FramePipeline(colour_logits, lambda: None, (36, 64), MEAN, STD, order, (72, 128))
        x = pipe.preprocess(frame)
        import cv2

        resized = cv2.resize(frame, (64, 36), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        if order == "BGR":
            resized = resized[..., ::-1]
        expected = ((resized - np.array(MEAN, np.float32)) / np.array(STD, np.float32)).transpose(2, 0, 1)[None]
        np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-5)


def test_process_times_every_stage_and_draws_at_camera_size() -> None:
    frame = synthetic_frame(90, 160)
    pipe = FramePipeline(colour_logits, lambda: None, (45, 80), MEAN, STD, "RGB", (90, 160))
    overlay = pipe.process(frame)
    assert overlay.shape == (90, 160, 3) and overlay.dtype == np.uint8
    assert np.all(pipe.times_ns > 0)
    classes = np.argmax(pipe.x[0], axis=0)
    import cv2

    up = cv2.resize(classes.astype(np.uint8), (160, 90), interpolation=cv2.INTER_NEAREST)
    expected = cv2.addWeighted(frame, 0.5, pipe.palette[up], 0.5, 0.0)
    np.testing.assert_array_equal(overlay, expected)
    out = measure_e2e(pipe, frame, duration_s=0.05, min_frames=5)
    assert out["frames"] >= 5 and set(out["stages_ms_p50"]) == set(STAGES)
    assert out["frame_ms_p50"] >= out["stages_ms_p50"]["inference"]


def test_camera_pacing_counts_misses() -> None:
    frame = synthetic_frame(48, 64)
    fast = FramePipeline(colour_logits, lambda: None, (24, 32), MEAN, STD, "RGB", (48, 64))
    ok = camera_paced(fast, frame, target_fps=50, deadline_ms=20, duration_s=0.4)
    assert ok["frames_offered"] >= 15 and ok["deadline_miss_pct"] < 20 and ok["frames_dropped"] <= 2
    assert ok["achieved_fps"] == pytest.approx(50, rel=0.25)

    def slow(x: np.ndarray) -> np.ndarray:
        time.sleep(0.045)  # 45 ms work for a 20 ms frame period
        return colour_logits(x)

    late = camera_paced(FramePipeline(slow, lambda: None, (24, 32), MEAN, STD, "RGB", (48, 64)), frame,
                        target_fps=50, deadline_ms=20, duration_s=0.4)
    assert late["frames_dropped"] > 0 and late["deadline_miss_pct"] > 60
    assert late["latency_ms_p50"] >= 45


def test_logits_resize_matches_the_pytorch_protocol() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 6, 23, 31)).astype(np.float32)
    ours = logits_to_labels(logits, (90, 120))
    ref = F.interpolate(torch.from_numpy(logits), size=(90, 120), mode="bilinear", align_corners=False).argmax(1)[0].numpy()
    assert ours.shape == (90, 120) and (ours == ref).mean() > 0.999
    assert np.array_equal(logits_to_labels(logits, (23, 31)), logits[0].argmax(0))


class TinySplit:
    """Three images whose labels are exactly what ``colour_logits`` predicts (so mIoU must be 1)."""

    def __init__(self) -> None:
        from edgekd.data import DatasetInfo

        self.info = DatasetInfo("tiny", ("r", "g", "b"), 3, 255, "folder", Path("."))
        self.split = "val"
        self.frames = [synthetic_frame(40, 60, seed=s) for s in range(3)]

    def __len__(self) -> int:
        return len(self.frames)

    def read_pair(self, i: int):
        frame = self.frames[i]
        norm = (frame.astype(np.float32) - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
        mask = np.argmax(norm, axis=2).astype(np.uint8)
        mask[:2] = 255  # an ignored band
        return frame, mask


def test_accuracy_protocol_and_delta() -> None:
    acc = evaluate_session(colour_logits, lambda: None, TinySplit(), input_hw=(40, 60),
                           normalization={"mean": MEAN, "std": STD, "channel_order": "RGB"})
    assert acc["images"] == 3 and acc["miou"] == pytest.approx(1.0)
    # edgekd.metrics counts the edge of an ignored region as a true boundary, so a perfect prediction
    # scores a little under 1 here (reported to the metrics owner); the protocol itself is exact.
    assert acc["boundary_f"] > 0.9
    assert set(acc["per_class_iou"]) == {"r", "g", "b"}
    worse = evaluate_session(lambda x: colour_logits(x)[:, ::-1].copy(), lambda: None, TinySplit(), input_hw=(20, 30),
                             normalization={"mean": MEAN, "std": STD}, limit=2)
    assert worse["images"] == 2 and worse["miou"] < 0.9
    with_delta = add_reference_delta(worse, {**acc, "images": 2})
    assert with_delta["delta_miou_vs_fp32"] == pytest.approx(worse["miou"] - 1.0)
    assert add_reference_delta(worse, acc)["delta_miou_vs_fp32"] is None  # different image counts never compared
    assert "no PyTorch FP32" in add_reference_delta(worse, None)["delta_reason"]
