"""TensorRT: recipe writing and validation, calibrator plumbing without a GPU, engines where CUDA exists."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch

from edgekd.backends.base import BackendUnavailable
from edgekd.backends.calibration import CalibrationBatches, normalize_pixels
from edgekd.backends.tensorrt_recipe import (
    CalibratorFeed, RecipeError, calibrator_feed, engine_cache_path, for_target, make_recipe, read_recipe, validate_recipe,
)
from edgekd.export import export_checkpoint, load_artifact, read_manifest
from test_export_support import MEAN, SIZE, STD, build_tiny, make_checkpoint, tiny_ckpt  # noqa: F401  (fixture)

NORM = {"mean": MEAN, "std": STD, "channel_order": "RGB"}
HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
NO_ENGINE_REASON = "building TensorRT engines needs the tensorrt package and a CUDA GPU (neither is here)"


@pytest.fixture(scope="module")
def untrained_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("trt") / "tiny.safetensors", build_tiny(num_classes=4).eval(),
                           class_names=["a", "b", "c", "d"])


def _recipe(**over):
    kw = dict(precision="fp16", onnx_file="model.onnx", onnx_sha256="0" * 64, input_size=SIZE, dynamic_batch=True,
              options={"trt_workspace_mb": 512}, int8=None)
    kw.update(over)
    return make_recipe(**kw)


def test_fp16_export_writes_onnx_and_a_valid_recipe(untrained_ckpt, tmp_path):
    (path,) = export_checkpoint(untrained_ckpt, backends="tensorrt", precisions="fp16", out_dir=tmp_path, dynamic_batch=True,
                                options={"trt_workspace_mb": 256, "trt_max_batch": 4})
    recipe = read_recipe(path)
    assert recipe["precision"] == "fp16" and recipe["workspace_mb"] == 256 and recipe["int8"] is None
    assert recipe["profiles"] == [{"input": {"min": [1, 3, *SIZE], "opt": [1, 3, *SIZE], "max": [4, 3, *SIZE]}}]
    manifest = read_manifest(path)
    assert manifest["runtime_file"] == "recipe.json" and manifest["input_shape"] == ["N", 3, *SIZE]
    assert set(manifest["files"]) == {"model.onnx", "recipe.json"}
    from edgekd.checkpoint import sha256_file

    assert recipe["onnx_sha256"] == sha256_file(path / "model.onnx")
    assert manifest["parity"]["status"] in ("unavailable", "skipped")


def test_int8_export_stores_calibration_pixels_for_the_target(tiny_ckpt, synthetic_root, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="tensorrt", precisions="int8", out_dir=tmp_path,
                                calib_dir=synthetic_root, calib_size=5, parity_images=2)
    recipe = read_recipe(path)
    int8 = recipe["int8"]
    assert int8["source"] == "calibrator" and int8["calibrator"] == "IInt8EntropyCalibrator2" and int8["num_images"] == 5
    pixels = np.load(path / int8["data"])
    assert pixels.dtype == np.uint8 and pixels.shape == (5, 3, *SIZE)
    manifest = read_manifest(path)
    assert manifest["calibration"]["split"] == "train" and manifest["calibration"]["num_images"] == 5
    assert manifest["parity"]["status"] == "unavailable" and "TensorRT" in manifest["parity"]["reason"]
    feed = calibrator_feed(path, recipe, tmp_path / "cache.bin")
    first = feed.next_host_batch()
    np.testing.assert_allclose(first, normalize_pixels(pixels[:1], int8["normalization"]))


def test_int8_qdq_source_writes_a_symmetric_qdq_onnx(tiny_ckpt, synthetic_root, tmp_path):
    import onnx
    from onnx import numpy_helper

    (path,) = export_checkpoint(tiny_ckpt, backends="tensorrt", precisions="int8", out_dir=tmp_path, calib_dir=synthetic_root,
                                calib_size=4, parity_images=0, options={"trt_int8": "qdq"})
    assert read_recipe(path)["int8"] == {"source": "qdq", "num_images": 4}
    graph = onnx.load(str(path / "model.onnx")).graph
    inits = {i.name: i for i in graph.initializer}
    zero_points = [numpy_helper.to_array(inits[n.input[2]]) for n in graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]
    assert zero_points and all(zp.dtype == np.int8 and not zp.any() for zp in zero_points), "TensorRT needs zero points of 0"
    assert not (path / "calibration_pixels.npy").exists()


@pytest.mark.parametrize("change, message", [
    ({"precision": "int4"}, "precision 'int4'"),
    ({"workspace_mb": 0}, "workspace_mb"),
    ({"dla_core": 0, "precision": "fp32"}, "DLA runs fp16 or int8"),
    ({"dla_core": -1}, "dla_core -1"),
    ({"profiles": [{"input": {"min": [2, 3, 64, 96], "opt": [1, 3, 64, 96], "max": [4, 3, 64, 96]}}]}, "min ≤ opt ≤ max"),
    ({"extra": 1}, "unknown keys \\['extra'\\]"),
    ({"format_version": 99}, "re-export"),
    ({"precision": "int8"}, "needs an int8 block"),
])
def test_bad_recipes_are_refused(change, message):
    recipe = {**_recipe(), **change}
    with pytest.raises(RecipeError, match=message):
        validate_recipe(recipe)


def test_calibrator_batch_size_must_match_the_profile_opt_batch():
    int8 = {"source": "calibrator", "calibrator": "IInt8EntropyCalibrator2", "data": "c.npy", "batch_size": 2,
            "num_images": 4, "cache": "c.cache", "normalization": NORM}
    with pytest.raises(RecipeError, match="must equal the profile's opt batch 1"):
        _recipe(precision="int8", int8=int8)


def test_recipe_file_checks_find_missing_files(tmp_path):
    (tmp_path / "recipe.json").write_text(json.dumps(_recipe()))
    with pytest.raises(RecipeError, match="model.onnx"):
        read_recipe(tmp_path)


def test_calibrator_feed_batches_in_order_drops_the_partial_batch_and_caches(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (5, 3, 4, 6), dtype=np.uint8)
    feed = CalibratorFeed(CalibrationBatches(pixels, batch_size=2, normalization=NORM), tmp_path / "c" / "calib.cache")
    assert feed.get_batch_size() == 2 and len(feed.batches) == 2 and feed.batches.num_images_used == 4
    batches = [feed.next_host_batch(), feed.next_host_batch()]
    assert feed.next_host_batch() is None and feed.fed == 2
    for i, batch in enumerate(batches):
        assert batch.dtype == np.float32 and batch.flags["C_CONTIGUOUS"] and batch.shape == (2, 3, 4, 6)
        np.testing.assert_allclose(batch, normalize_pixels(pixels[2 * i:2 * i + 2], NORM))
    feed.batches.reset()
    np.testing.assert_array_equal(feed.next_host_batch(), batches[0])
    assert feed.read_cache() is None
    feed.write_cache(memoryview(b"calibration-table"))
    assert feed.read_cache() == b"calibration-table"


def test_bgr_models_get_bgr_calibration_batches():
    pixels = np.zeros((1, 3, 2, 2), np.uint8)
    pixels[:, 0] = 200  # red
    out = normalize_pixels(pixels, {"mean": [0, 0, 0], "std": [1, 1, 1], "channel_order": "BGR"})
    assert out[0, 2].max() == 200 and out[0, 0].max() == 0


def test_engine_cache_is_keyed_by_gpu_tensorrt_version_and_recipe(tmp_path):
    recipe = _recipe()
    a = engine_cache_path(tmp_path, "NVIDIA Jetson AGX Orin", "10.3.0", recipe)
    assert a.parent == tmp_path / "nvidia-jetson-agx-orin" / "trt-10.3.0" and a.suffix == ".engine"
    assert engine_cache_path(tmp_path, "NVIDIA GeForce RTX 4090", "10.3.0", recipe).parent != a.parent
    assert engine_cache_path(tmp_path, "NVIDIA Jetson AGX Orin", "10.7.0", recipe).parent != a.parent
    assert engine_cache_path(tmp_path, "NVIDIA Jetson AGX Orin", "10.3.0", {**recipe, "workspace_mb": 64}) != a


def test_device_settings_replace_the_export_time_ones_and_key_their_own_engine(tmp_path):
    from edgekd.profiles import load_profile, runtime_options_for

    recipe = _recipe()  # exported with a 512 MiB workspace, no DLA
    agx = runtime_options_for(load_profile("jetson-agx-orin"), "tensorrt")
    target = for_target(recipe, **agx)
    assert target["workspace_mb"] == agx["workspace_mb"] and target["dla_core"] == agx.get("dla_core")
    assert recipe["workspace_mb"] == 512 and recipe["dla_core"] is None  # the artifact's recipe is untouched
    assert engine_cache_path(tmp_path, "Orin", "10.3.0", target) != engine_cache_path(tmp_path, "Orin", "10.3.0", recipe)
    assert for_target(recipe) == recipe
    with pytest.raises(RecipeError, match="DLA runs fp16 or int8 only"):
        for_target(_recipe(precision="fp32"), dla_core=0)


def test_loading_without_tensorrt_says_why_and_how_to_fix(untrained_ckpt, tmp_path):
    if HAVE_TRT and torch.cuda.is_available():
        pytest.skip("TensorRT and CUDA are present; the engine test covers loading")
    (path,) = export_checkpoint(untrained_ckpt, backends="tensorrt", precisions="fp32", out_dir=tmp_path)
    with pytest.raises(BackendUnavailable, match="edgekd\\[tensorrt\\]|CUDA"):
        load_artifact(path)


@pytest.mark.gpu
@pytest.mark.backend
@pytest.mark.skipif(not (HAVE_TRT and torch.cuda.is_available()), reason=NO_ENGINE_REASON)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_builds_caches_and_matches_pytorch(precision, tiny_ckpt, synthetic_root, tmp_path):
    from edgekd.backends.tensorrt import build_engine_from_recipe
    from test_export_support import normalized_val_images, torch_logits

    (path,) = export_checkpoint(tiny_ckpt, backends="tensorrt", precisions=precision, out_dir=tmp_path,
                                calib_dir=synthetic_root, calib_size=8, parity_images=4)
    engine = build_engine_from_recipe(path, tmp_path / "cache")
    assert engine.is_file() and build_engine_from_recipe(path, tmp_path / "cache") == engine
    session = load_artifact(path, cache_dir=str(tmp_path / "cache"))
    x = normalized_val_images(synthetic_root)
    got, want = session.run(x[:1]), torch_logits(tiny_ckpt, x[:1])
    if precision == "fp32":
        np.testing.assert_allclose(got, want, atol=1e-2)
    assert (got.argmax(1) == want.argmax(1)).mean() > 0.9
