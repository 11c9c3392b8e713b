"""TensorRT build recipes and calibration feeding: the plain-Python half of the TensorRT backend.

Engines are not portable across GPUs or TensorRT versions, so export writes the ONNX graph plus
``recipe.json`` (precision, workspace, shape profiles, INT8 source, DLA core) and the target
builds the engine from it (``edgekd.backends.tensorrt.build_engine_from_recipe``), caching it
under a key made of the GPU name, the TensorRT version and the recipe + ONNX hashes. Nothing
here imports tensorrt, so recipes and calibrator plumbing are tested on machines without a GPU.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.backends.calibration import CalibrationBatches
from edgekd.errors import EdgekdError

RECIPE_FILE = "recipe.json"
RECIPE_FORMAT = "edgekd-tensorrt-recipe"
RECIPE_VERSION = 1
CALIB_DATA_FILE = "calibration_pixels.npy"
CALIB_CACHE_FILE = "calibration.cache"
INT8_SOURCES = ("calibrator", "qdq")
_KEYS = {"format", "format_version", "onnx", "onnx_sha256", "precision", "input_name", "output_name", "workspace_mb",
         "profiles", "int8", "dla_core", "gpu_fallback", "timing_cache", "builder_optimization_level"}
_INT8_KEYS = {"source", "calibrator", "data", "data_format", "batch_size", "num_images", "cache", "normalization"}


class RecipeError(EdgekdError):
    pass


def shape_profile(input_size: tuple[int, int], dynamic_batch: bool, max_batch: int = 8, opt_batch: int = 1) -> dict[str, list[int]]:
    """min/opt/max input shapes; only the batch is dynamic (H×W stay fixed for speed and INT8 ranges)."""
    h, w = input_size
    top = max_batch if dynamic_batch else 1
    return {"min": [1, 3, h, w], "opt": [min(opt_batch, top), 3, h, w], "max": [top, 3, h, w]}


def make_recipe(*, precision: str, onnx_file: str, onnx_sha256: str, input_size: tuple[int, int], dynamic_batch: bool,
                options: dict[str, Any], int8: dict[str, Any] | None) -> dict[str, Any]:
    """A validated recipe dict from export options (``trt_workspace_mb``, ``trt_dla_core``, ``trt_max_batch``...)."""
    recipe = {
        "format": RECIPE_FORMAT, "format_version": RECIPE_VERSION, "onnx": onnx_file, "onnx_sha256": onnx_sha256,
        "precision": precision, "input_name": "input", "output_name": "logits",
        "workspace_mb": int(options.get("trt_workspace_mb", 1024)),
        "profiles": [{"input": shape_profile(input_size, dynamic_batch, int(options.get("trt_max_batch", 8)))}],
        "int8": int8, "dla_core": options.get("trt_dla_core"), "gpu_fallback": bool(options.get("trt_gpu_fallback", True)),
        "timing_cache": "timing.cache", "builder_optimization_level": int(options.get("trt_opt_level", 3)),
    }
    validate_recipe(recipe)
    return recipe


def for_target(recipe: dict[str, Any], *, workspace_mb: int | None = None, dla_core: int | None = None) -> dict[str, Any]:
    """The recipe with the target device's build settings (a device profile's TensorRT workspace and
    DLA core) in place of the export-time ones; re-validated, so fp32 on a DLA core is refused.

    The engine cache key covers the whole recipe, so a different workspace or DLA core builds
    its own engine instead of reusing one built for other settings.
    """
    merged = dict(recipe)
    if workspace_mb is not None:
        merged["workspace_mb"] = int(workspace_mb)
    if dla_core is not None:
        merged["dla_core"] = int(dla_core)
    return validate_recipe(merged)


def _check_profile(name: str, profile: dict[str, Any]) -> None:
    try:
        lo, opt, hi = (list(map(int, profile[k])) for k in ("min", "opt", "max"))
    except (KeyError, TypeError, ValueError) as err:
        raise RecipeError(f"profile for {name!r} needs integer lists min/opt/max ({err})") from err
    if not (len(lo) == len(opt) == len(hi) == 4):
        raise RecipeError(f"profile for {name!r} must give 4-d N×3×H×W shapes, got {lo}, {opt}, {hi}")
    if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)) or min(lo) < 1:
        raise RecipeError(f"profile for {name!r} must satisfy 1 ≤ min ≤ opt ≤ max per dimension, got {lo} ≤ {opt} ≤ {hi}")


def validate_recipe(recipe: dict[str, Any], artifact_dir: Path | None = None) -> dict[str, Any]:
    """Check every field (unknown keys are errors) and, given ``artifact_dir``, that its files exist."""
    if recipe.get("format") != RECIPE_FORMAT or recipe.get("format_version") != RECIPE_VERSION:
        raise RecipeError(f"not an {RECIPE_FORMAT} v{RECIPE_VERSION} file (format={recipe.get('format')!r}, "
                          f"version={recipe.get('format_version')!r}); re-export with this edgekd")
    unknown = sorted(set(recipe) - _KEYS)
    if unknown:
        raise RecipeError(f"recipe has unknown keys {unknown}; known: {sorted(_KEYS)}")
    if recipe.get("precision") not in ("fp32", "fp16", "int8"):
        raise RecipeError(f"recipe precision {recipe.get('precision')!r} is not fp32, fp16 or int8")
    if int(recipe.get("workspace_mb", 0)) < 1:
        raise RecipeError(f"workspace_mb {recipe.get('workspace_mb')!r} must be a positive number of MiB")
    if not recipe.get("profiles"):
        raise RecipeError("recipe needs at least one optimisation profile")
    for profile in recipe["profiles"]:
        for name, shapes in profile.items():
            _check_profile(name, shapes)
    dla = recipe.get("dla_core")
    if dla is not None and (not isinstance(dla, int) or dla < 0):
        raise RecipeError(f"dla_core {dla!r} must be a DLA core index (0, 1) or null")
    if dla is not None and recipe["precision"] == "fp32":
        raise RecipeError("DLA runs fp16 or int8 only; export with --precision fp16 or int8 for a DLA core")
    _validate_int8(recipe)
    if artifact_dir is not None:
        _check_files(recipe, Path(artifact_dir))
    return recipe


def _validate_int8(recipe: dict[str, Any]) -> None:
    int8 = recipe.get("int8")
    if recipe["precision"] != "int8":
        if int8 is not None:
            raise RecipeError(f"an int8 block is only meaningful for precision int8, not {recipe['precision']}")
        return
    if not isinstance(int8, dict):
        raise RecipeError("precision int8 needs an int8 block (calibration data or a QDQ ONNX)")
    unknown = sorted(set(int8) - _INT8_KEYS)
    if unknown:
        raise RecipeError(f"int8 block has unknown keys {unknown}; known: {sorted(_INT8_KEYS)}")
    if int8.get("source") not in INT8_SOURCES:
        raise RecipeError(f"int8 source {int8.get('source')!r} is not one of {', '.join(INT8_SOURCES)}")
    if int8["source"] == "calibrator":
        opt_batch = recipe["profiles"][0]["input"]["opt"][0]
        if int8.get("batch_size") != opt_batch:
            raise RecipeError(f"calibration batch size {int8.get('batch_size')} must equal the profile's opt batch {opt_batch} (TensorRT calibrates at opt)")
        if not int8.get("data") or not int8.get("normalization"):
            raise RecipeError("calibrator int8 needs 'data' (a .npy of calibration pixels) and 'normalization'")


def _check_files(recipe: dict[str, Any], artifact_dir: Path) -> None:
    onnx = artifact_dir / recipe["onnx"]
    if not onnx.is_file():
        raise RecipeError(f"recipe names ONNX file {recipe['onnx']!r} but {onnx} does not exist")
    int8 = recipe.get("int8") or {}
    if int8.get("source") == "calibrator" and not (artifact_dir / int8["data"]).is_file():
        raise RecipeError(f"recipe names calibration data {int8['data']!r} but it is missing from {artifact_dir}")


def read_recipe(artifact_dir: Path) -> dict[str, Any]:
    path = Path(artifact_dir) / RECIPE_FILE
    if not path.is_file():
        raise RecipeError(f"{artifact_dir} has no {RECIPE_FILE}; is it a tensorrt artifact made by edgekd export?")
    return validate_recipe(json.loads(path.read_text()), artifact_dir)


def recipe_hash(recipe: dict[str, Any]) -> str:
    """Hash of what changes the engine (the recipe minus file paths that do not affect it)."""
    canonical = json.dumps({k: v for k, v in recipe.items() if k != "timing_cache"}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


def engine_cache_dir(cache_dir: Path, gpu_name: str, trt_version: str) -> Path:
    """Engines and the timing cache are valid for one GPU model and one TensorRT version."""
    return Path(cache_dir) / slug(gpu_name) / f"trt-{slug(trt_version)}"


def engine_cache_path(cache_dir: Path, gpu_name: str, trt_version: str, recipe: dict[str, Any]) -> Path:
    return engine_cache_dir(cache_dir, gpu_name, trt_version) / f"{recipe_hash(recipe)[:16]}.engine"


class CalibratorFeed:
    """What an ``IInt8EntropyCalibrator2`` does, minus the GPU: batches in order and the cache file.

    ``get_batch`` on the TensorRT subclass copies ``next_host_batch()`` to the device; the cache
    lets a rebuild (new TensorRT tactic, same data) skip calibration.
    """

    def __init__(self, batches: CalibrationBatches, cache_path: Path) -> None:
        self.batches = batches
        self.cache_path = Path(cache_path)
        self.fed = 0

    def get_batch_size(self) -> int:
        return self.batches.batch_size

    def next_host_batch(self) -> np.ndarray | None:
        batch = self.batches.next_batch()
        if batch is not None:
            self.fed += 1
        return batch

    def read_cache(self) -> bytes | None:
        return self.cache_path.read_bytes() if self.cache_path.is_file() else None

    def write_cache(self, cache: bytes | memoryview) -> None:
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        self.cache_path.write_bytes(bytes(cache))


def calibrator_feed(artifact_dir: Path, recipe: dict[str, Any], cache_path: Path) -> CalibratorFeed:
    """The feed for a recipe's stored calibration pixels (uint8, normalised batch by batch)."""
    int8 = recipe["int8"]
    pixels = np.load(Path(artifact_dir) / int8["data"], allow_pickle=False)
    return CalibratorFeed(CalibrationBatches(pixels, int(int8["batch_size"]), int8["normalization"]), cache_path)
