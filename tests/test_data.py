"""edgekd.data: layouts, validation errors, transforms, synthetic scenes and the ``edgekd data`` CLI."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from edgekd.cli import main
from edgekd.data import (
    SYNTHETIC_CLASSES, DataError, DatasetInfo, SegDataset, build_eval_transform, build_train_transform, dataset_splits,
    default_synthetic_root, generate_sequence, generate_synthetic_dataset, open_dataset, parse_size,
    render_scene, render_sequence,
)
from edgekd.errors import EdgekdError

SHARED = Path(__file__).resolve().parents[2] / "shared"
SIZE = (48, 64)


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _camvid(root: Path, n: int = 2, hw=(12, 16)) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for i in range(n):
            _png(root / split / f"f{i}.png", rng.integers(0, 255, (*hw, 3), dtype=np.uint8))
            _png(root / f"{split}annot" / f"f{i}.png", rng.integers(0, 12, hw, dtype=np.uint8))  # 11 = void
    return root


def _folder(root: Path, n: int = 3, hw=(12, 16), lists=True, yaml=True) -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        _png(root / "images" / f"a{i}.jpg", rng.integers(0, 255, (*hw, 3), dtype=np.uint8))
        _png(root / "masks" / f"a{i}.png", rng.integers(0, 3, hw, dtype=np.uint8))
    if lists:
        (root / "train.txt").write_text("a0\na1.jpg\n")
        (root / "val.txt").write_text("# held out\nimages/a2\n")
    if yaml:
        (root / "dataset.yaml").write_text("name: tiny\nclass_names: [x, y, z]\n")
    return root


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synthetic_dataset(tmp_path_factory.mktemp("syn") / "ds", num_train=4, num_val=2, size=SIZE, seed=3)


# --- synthetic scenes -------------------------------------------------------------------------

def test_synthetic_dataset_is_deterministic_and_complete(synth_root, tmp_path):
    again = generate_synthetic_dataset(tmp_path / "again", num_train=4, num_val=2, size=SIZE, seed=3)
    files = sorted(p.relative_to(synth_root) for p in synth_root.rglob("*") if p.is_file())
    assert {"dataset.yaml", "train.txt", "val.txt", "synthetic.json"} <= {str(f) for f in files}
    assert len([f for f in files if f.parts[0] == "images"]) == 6
    for rel in files:
        assert (synth_root / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = generate_synthetic_dataset(tmp_path / "other", num_train=1, num_val=0, size=SIZE, seed=4)
    assert (other / "images/train_00000.png").read_bytes() != (synth_root / "images/train_00000.png").read_bytes()
    assert not list(tmp_path.glob(".*partial*")), "temporary folders must be renamed or removed"


def test_synthetic_val_does_not_depend_on_train_count(synth_root, tmp_path):
    fewer = generate_synthetic_dataset(tmp_path / "fewer", num_train=1, num_val=2, size=SIZE, seed=3)
    assert (fewer / "images/val_00001.png").read_bytes() == (synth_root / "images/val_00001.png").read_bytes()


def test_every_synthetic_class_appears_in_a_small_set():
    seen = set()
    for seed in range(24):
        image, mask = render_scene(seed, (96, 128))
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8 and mask.shape == (96, 128)
        seen |= set(np.unique(mask).tolist())
    assert seen == set(range(len(SYNTHETIC_CLASSES)))


def test_open_synthetic_dataset(synth_root):
    ds = open_dataset(synth_root, "train")
    assert isinstance(ds, SegDataset) and len(ds) == 4 and ds.split == "train"
    assert ds.info == DatasetInfo("synthetic-ar", SYNTHETIC_CLASSES, 7, 255, "folder", synth_root)
    image, mask = ds[0]
    assert image.dtype == torch.uint8 and image.shape == (3, *SIZE)
    assert mask.dtype == torch.int64 and mask.shape == SIZE and int(mask.max()) < 7
    assert len(open_dataset(synth_root, "val")) == 2 and len(open_dataset(synth_root, "all")) == 6
    assert ds.validate() == 4


def test_sequence_is_smooth_consistent_and_written(tmp_path):
    frames, masks = render_sequence(6, SIZE, seed=1, camera_motion="pan")
    assert frames.shape == (6, *SIZE, 3) and masks.shape == (6, *SIZE)
    again, _ = render_sequence(6, SIZE, seed=1, camera_motion="pan")
    assert np.array_equal(frames, again)
    same = [(masks[k] == masks[k + 1]).mean() for k in range(5)]
    assert min(same) > 0.7, same  # the same scene, moving a little each frame
    assert not np.array_equal(masks[0], masks[-1])  # ... but moving
    root = generate_sequence(tmp_path / "seq", num_frames=4, size=SIZE, seed=1, camera_motion="zoom")
    ds = open_dataset(root, "all")
    assert [p[0].name for p in ds.pairs] == [f"frame_{k:05d}.png" for k in range(4)]
    with pytest.raises(DataError, match="camera_motion"):
        render_sequence(2, SIZE, camera_motion="orbit")


def test_default_synthetic_root_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKD_CACHE", str(tmp_path / "cache"))
    root = default_synthetic_root(num_train=2, num_val=1, size=SIZE)
    assert root.parent == tmp_path / "cache" and len(open_dataset(root, "train")) == 2
    stamp = (root / "synthetic.json").stat().st_mtime_ns
    assert default_synthetic_root(num_train=2, num_val=1, size=SIZE) == root
    assert (root / "synthetic.json").stat().st_mtime_ns == stamp
    assert default_synthetic_root(num_train=2, num_val=1, size=SIZE, seed=1) != root


def test_generator_refuses_to_overwrite(synth_root):
    with pytest.raises(DataError, match="already exists"):
        generate_synthetic_dataset(synth_root, num_train=1, num_val=0, size=SIZE)


# --- layouts ------------------------------------------------------------------------------------

def test_camvid_layout(tmp_path):
    root = _camvid(tmp_path / "camvid")
    ds = open_dataset(root, "val")
    assert ds.info.layout == "camvid" and ds.info.num_classes == 11 and ds.info.ignore_index == 11
    assert ds.info.class_names[0] == "Sky" and ds.info.class_names[-1] == "Bicyclist"
    assert len(ds) == 2 and ds[1][0].shape == (3, 12, 16)
    assert len(open_dataset(root, "trainval")) == 4
    assert dataset_splits(root) == ["train", "val", "trainval", "all"]
    before = ds.split_hash()
    assert before == open_dataset(root, "val").split_hash() and before != open_dataset(root, "train").split_hash()
    _png(root / "val" / "f2.png", np.zeros((12, 16, 3), np.uint8))
    _png(root / "valannot" / "f2.png", np.zeros((12, 16), np.uint8))
    assert open_dataset(root, "val").split_hash() != before


def test_folder_layout_lists_and_overrides(tmp_path):
    root = _folder(tmp_path / "f")
    assert [p[0].name for p in open_dataset(root, "train").pairs] == ["a0.jpg", "a1.jpg"]
    val = open_dataset(root, "val")
    assert val.info.class_names == ("x", "y", "z") and val.info.ignore_index == 255 and val.info.name == "tiny"
    assert len(open_dataset(root, "all")) == 3
    over = open_dataset(root, "val", class_names=["p", "q", "r", "s"], ignore_index=200)
    assert over.info.num_classes == 4 and over.info.ignore_index == 200


# --- bad data: every case raises DataError naming the file ------------------------------------

def test_image_without_mask(tmp_path):
    root = _camvid(tmp_path / "c")
    (root / "valannot" / "f1.png").unlink()
    with pytest.raises(DataError, match=r"f1\.png has no mask"):
        open_dataset(root, "val")


def test_mismatched_sizes_and_labels_out_of_range(tmp_path):
    root = _camvid(tmp_path / "c")
    _png(root / "valannot" / "f0.png", np.zeros((12, 15), np.uint8))
    _png(root / "valannot" / "f1.png", np.full((12, 16), 40, np.uint8))
    ds = open_dataset(root, "val")  # pairing is fine: pixels are checked on load
    with pytest.raises(DataError, match=r"valannot/f0\.png is 12x15 but image .*f0\.png is 12x16"):
        ds[0]
    with pytest.raises(DataError, match=r"valannot/f1\.png has label value\(s\) \[40\]"):
        ds[1]
    with pytest.raises(DataError, match=r"f0\.png.*\(and 1 more problem"):
        ds.validate()
    _png(root / "valannot" / "f0.png", np.zeros((12, 16), np.uint8))
    assert ds.validate(max_items=1) == 1  # only the first item is checked


def test_unreadable_and_wrong_kind_of_files(tmp_path):
    root = _folder(tmp_path / "f", lists=False)
    (root / "images" / "a0.jpg").write_bytes(b"not an image")
    _png(root / "masks" / "a1.png", np.zeros((12, 16, 3), np.uint8))
    _png(root / "masks" / "a2.png", np.zeros((12, 16), np.uint16))
    ds = open_dataset(root, "all")
    with pytest.raises(DataError, match=r"a0\.jpg is not a readable image"):
        ds[0]
    with pytest.raises(DataError, match=r"a1\.png is a 3-channel mask"):
        ds[1]
    with pytest.raises(DataError, match=r"a2\.png is a uint16 mask"):
        ds[2]


@pytest.mark.parametrize("case, pattern", [
    ("missing", r"does not exist"),
    ("empty", r"images has no images"),
    ("no_layout", r"neither images/ \+ masks/"),
    ("yaml_key", r"dataset\.yaml has unknown keys \['palette'\]"),
    ("no_names", r"without class names; write .*dataset\.yaml"),
    ("bad_line", r"val\.txt:2: 'ghost' names no file"),
    ("no_split", r"split 'train' is not in .*available: \['all'\]"),
    ("ignore_is_class", r"ignore_index 1 .* is also class 1"),
])
def test_open_errors(tmp_path, case, pattern):
    root = tmp_path / "d"
    if case == "empty":
        (root / "images").mkdir(parents=True)
        (root / "masks").mkdir()
        (root / "dataset.yaml").write_text("class_names: [a]\n")
    elif case == "no_layout":
        (root / "pictures").mkdir(parents=True)
    elif case != "missing":
        _folder(root, lists=case == "bad_line", yaml=case != "no_names")
    if case == "yaml_key":
        (root / "dataset.yaml").write_text("class_names: [a, b, c]\npalette: []\n")
    if case == "bad_line":
        (root / "val.txt").write_text("a0\nghost\n")
    split = {"bad_line": "val", "no_split": "train"}.get(case, "all")
    kwargs = {"ignore_index": 1} if case == "ignore_is_class" else {}
    with pytest.raises(DataError, match=pattern):
        open_dataset(root, split, **kwargs)


def test_data_error_is_a_user_error():
    assert issubclass(DataError, EdgekdError)


# --- transforms ---------------------------------------------------------------------------------

PALETTE = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)], np.uint8)


def _blocky_pair(rng, hw=(60, 80), block=12):
    small = rng.integers(0, len(PALETTE), (hw[0] // block + 1, hw[1] // block + 1), dtype=np.uint8)
    mask = np.kron(small, np.ones((block, block), np.uint8))[: hw[0], : hw[1]]
    return PALETTE[mask], mask


def test_train_transform_keeps_image_and_mask_aligned():
    rng = np.random.default_rng(0)
    t = build_train_transform((40, 40), scale_range=(0.5, 2.0), flip=True, color_jitter=0.0, ignore_index=255, seed=5)
    for _ in range(10):
        image, mask = _blocky_pair(rng)
        out_img, out_mask = t(image, mask)
        assert out_img.shape == (40, 40, 3) and out_mask.shape == (40, 40)
        valid = out_mask != 255
        nearest = np.argmin(((out_img[:, :, None, :].astype(int) - PALETTE[None, None]) ** 2).sum(-1), axis=-1)
        agreement = (nearest[valid] == out_mask[valid]).mean()
        assert agreement > 0.9, agreement  # only boundary pixels may blend


def test_crop_pads_with_ignore_index_and_black():
    image, mask = _blocky_pair(np.random.default_rng(1), hw=(20, 30))
    t = build_train_transform((64, 64), scale_range=None, flip=False, color_jitter=0.0, ignore_index=11, seed=0)
    out_img, out_mask = t(image, mask)
    assert out_img.shape == (64, 64, 3) and (out_mask != 11).sum() == 20 * 30
    assert np.all(out_img[out_mask == 11] == 0)
    assert sorted(np.unique(out_mask[out_mask != 11])) == sorted(np.unique(mask))


def test_crop_always_has_the_crop_size():
    rng = np.random.default_rng(6)
    t = build_train_transform((24, 32), scale_range=(0.3, 1.5), ignore_index=255, seed=3)
    for _ in range(40):
        hw = (int(rng.integers(8, 60)), int(rng.integers(8, 60)))
        image, mask = _blocky_pair(rng, hw=hw, block=4)
        out_img, out_mask = t(image, mask)
        assert out_img.shape == (24, 32, 3) and out_mask.shape == (24, 32), hw


def test_transforms_are_reproducible_with_a_seed():
    image, mask = _blocky_pair(np.random.default_rng(2))
    run = lambda seed: [build_train_transform((32, 32), ignore_index=255, seed=seed)(image, mask) for _ in range(1)][0]  # noqa: E731
    a, b, c = run(7), run(7), run(8)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not (np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1]))


def test_colour_jitter_changes_only_the_image():
    image, mask = _blocky_pair(np.random.default_rng(3))
    t = build_train_transform(None, scale_range=None, flip=False, color_jitter=0.4, ignore_index=255, seed=1)
    out_img, out_mask = t(image, mask)
    assert np.array_equal(out_mask, mask) and not np.array_equal(out_img, image)


def test_eval_transform():
    image, mask = _blocky_pair(np.random.default_rng(4))
    same = build_eval_transform()(image, mask)
    assert same[0] is image and same[1] is mask
    out_img, out_mask = build_eval_transform((30, 40))(image, mask)
    assert out_img.shape == (30, 40, 3) and set(np.unique(out_mask)) <= set(np.unique(mask))


def test_dataloader_workers_get_different_augmentations(synth_root):
    # Run in a fresh interpreter: DataLoader worker processes started from a pytest process that
    # already holds OpenVINO/ONNX Runtime threads (earlier tests) crashed it with SIGSEGV in CI.
    import subprocess
    import sys

    script = f"""
import torch
from edgekd.data import build_train_transform, open_dataset
torch.manual_seed(0)
t = build_train_transform((32, 32), ignore_index=255, seed=0)
ds = open_dataset({str(synth_root)!r}, "train", transform=t)
ds.pairs = ds.pairs[:1] * 4  # the same item four times
loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2, multiprocessing_context="spawn")
images = [batch[0][0] for batch in loader]
print("DIFFERENT" if not torch.equal(images[0], images[1]) else "SAME")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("DIFFERENT")  # worker 0 and worker 1 did not repeat each other


def test_parse_size():
    assert parse_size("240x320") == (240, 320) and parse_size("7X9") == (7, 9)
    for bad in ("240", "240x", "x320", "240*320", "-1x5", "0x5", "2.5x3"):
        with pytest.raises(EdgekdError, match="HxW"):
            parse_size(bad)


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_synth_and_inspect(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["data", "synth", str(out), "--num-train", "3", "--num-val", "1", "--image-size", "48x64", "--seed", "2"]) == 0
    assert main(["data", "inspect", str(out)]) == 0
    assert "class pixel frequency" in capsys.readouterr().out
    assert main(["data", "inspect", str(out), "--split", "val", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_items"] == 1 and report["splits"] == {"train": 3, "val": 1, "all": 4}
    assert report["image_sizes"] == {"48x64": 1} and abs(sum(report["class_frequency"].values()) - 1) < 1e-6
    assert main(["data", "synth", str(out), "--num-train", "1"]) == 2  # exists
    assert main(["data", "synth", str(tmp_path / "q"), "--sequence", "3", "--image-size", "32x48"]) == 0
    assert len(list((tmp_path / "q" / "images").iterdir())) == 3
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "synth", str(tmp_path / "r"), "--image-size", "48by64"])
    assert exit_info.value.code == 2
    assert "is not HxW" in capsys.readouterr().err


def test_cli_inspect_bad_dataset(tmp_path, capsys):
    root = _camvid(tmp_path / "c")
    _png(root / "trainannot" / "f1.png", np.full((12, 16), 99, np.uint8))
    assert main(["data", "inspect", str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "f1.png has label value(s) [99]" in err[0]
    assert main(["data", "inspect", str(tmp_path / "nowhere")]) == 2


# --- real data ----------------------------------------------------------------------------------

@pytest.mark.skipif(not (SHARED / "data" / "camvid").is_dir(), reason="shared CamVid data (../shared/data/camvid) absent")
def test_real_camvid_val():
    ds = open_dataset(SHARED / "data" / "camvid", "val")
    assert len(ds) == 101 and ds.info.ignore_index == 11 and ds.info.num_classes == 11
    for i in (0, 50, 100):
        image, mask = ds[i]
        assert image.shape == (3, 360, 480) and mask.shape == (360, 480)
