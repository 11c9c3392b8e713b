"""A training crop larger than the images is mostly ignore-label padding: the default clips itself to the
images' size, and a larger crop the user asked for is kept but named in one warning line."""
from __future__ import annotations

from edgekd.cli import main
from edgekd.training.crop import DEFAULT_CROP, resolve_crop_size


def test_default_crop_is_kept_for_camvid_sized_and_larger_images():
    assert resolve_crop_size(None, (360, 480)) == (DEFAULT_CROP, None)
    assert resolve_crop_size(None, (1024, 2048)) == (DEFAULT_CROP, None)


def test_default_crop_clips_to_small_images():
    assert resolve_crop_size(None, (96, 128)) == ((96, 128), None)
    assert resolve_crop_size(None, (400, 300))[0] == (360, 300)  # per side


def test_a_given_crop_larger_than_the_images_is_kept_and_warned_about():
    crop, line = resolve_crop_size((360, 480), (96, 128))
    assert crop == (360, 480)
    assert line.startswith("warning: --crop-size 360x480 is larger than the train images (96x128)")
    assert "93 % of each crop" in line and "pass --crop-size 96x128" in line
    assert resolve_crop_size((48, 64), (96, 128)) == ((48, 64), None)


def _train(synthetic_root, tmp_path, *extra):
    return main(["train", "--arch", "unet_tiny", "--data", str(synthetic_root), "--out", str(tmp_path / "s.safetensors"),
                 "--epochs", "1", "--batch-size", "2", "--max-steps-per-epoch", "1", "--eval-images", "1",
                 "--no-progress", "--json", *extra])


def test_train_warns_about_a_crop_larger_than_the_data(synthetic_root, tmp_path, capsys):
    assert _train(synthetic_root, tmp_path, "--crop-size", "128x96") == 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: --crop-size")]
    assert err == [err[0]] and "128x96" in err[0] and "(64x96)" in err[0] and "pass --crop-size 64x96" in err[0]


def test_train_without_a_crop_trains_at_the_data_size(synthetic_root, tmp_path, capsys):
    from edgekd.checkpoint import read_meta

    assert _train(synthetic_root, tmp_path) == 0
    assert "crop" not in capsys.readouterr().err  # nothing to warn about: the default fits the data
    meta = read_meta(tmp_path / "s.safetensors")
    assert list(meta.input_size) == [64, 96]


def test_distill_warns_about_a_crop_larger_than_image_size(synthetic_root, tiny_teacher, tmp_path, capsys):
    code = main(["distill", "--teacher", str(tiny_teacher), "--student", "unet_tiny", "--data", str(synthetic_root),
                 "--out", str(tmp_path / "d.safetensors"), "--image-size", "32x48", "--crop-size", "48x64",
                 "--epochs", "1", "--batch-size", "2", "--max-steps-per-epoch", "1", "--eval-images", "1",
                 "--cache", "off", "--no-progress", "--json"])
    assert code == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "warning: --crop-size 48x64 is larger than the --image-size images (32x48)" in err
    from edgekd.checkpoint import read_meta

    assert read_meta(tmp_path / "d.safetensors").trained_with["augment"]["crop_size"] == [48, 64]  # kept as asked


def test_an_unreadable_first_image_leaves_the_crop_to_the_loader(tmp_path):
    from types import SimpleNamespace

    from edgekd.data import DataError
    from edgekd.training.crop import apply_crop_size, first_image_hw

    class Broken:
        def __len__(self):
            return 1

        def read_pair(self, index):
            raise DataError("train_00000.png is not a readable image")

    assert first_image_hw(Broken()) is None
    cfg = SimpleNamespace(crop_size=None)
    apply_crop_size(cfg, None)
    assert cfg.crop_size == DEFAULT_CROP
