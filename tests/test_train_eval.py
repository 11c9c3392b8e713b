"""Supervised training, resume, and the train/eval/models CLI on a tiny synthetic dataset."""
from __future__ import annotations

import json

import pytest

from edgekd.checkpoint import load_train_state, read_meta
from edgekd.cli import main
from edgekd.training import TrainConfig, train_supervised
from edgekd.training.loop import train_state_path


def _cfg(root, out, **kw) -> TrainConfig:
    base = dict(arch="unet_tiny", data=str(root), out=str(out), epochs=1, batch_size=2, lr=0.01,
                crop_size=(48, 64), max_steps_per_epoch=2, val_images=2, seed=0)
    return TrainConfig(**{**base, **kw})


def test_train_writes_checkpoint_with_metadata_and_resumes(synthetic_root, tmp_path):
    out = tmp_path / "s.safetensors"
    first = train_supervised(_cfg(synthetic_root, out))
    meta = read_meta(out)
    assert first.epochs_run == 1 and meta.arch == "unet_tiny" and meta.num_classes == 7
    assert meta.trained_with["method"] == "supervised" and meta.trained_with["dataset_split_hash"]
    assert 0.0 <= meta.metrics["miou"] <= 1.0 and meta.metrics["epoch"] == 1
    assert load_train_state(train_state_path(out))["epoch"] == 1
    resumed = train_supervised(_cfg(synthetic_root, out, epochs=2, resume=True))
    assert resumed.epochs_run == 1 and [h["epoch"] for h in resumed.history] == [1, 2]
    assert read_meta(out).metrics["epoch"] == 2


def test_same_seed_gives_same_weights(synthetic_root, tmp_path):
    from safetensors.torch import load_file

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    train_supervised(_cfg(synthetic_root, a))
    train_supervised(_cfg(synthetic_root, b))
    wa, wb = load_file(str(a)), load_file(str(b))
    assert all((wa[k] == wb[k]).all() for k in wa)


def test_eval_cli_prints_json_with_all_fields(synthetic_root, tmp_path, capsys):
    out = tmp_path / "s.safetensors"
    train_supervised(_cfg(synthetic_root, out))
    assert main(["eval", str(out), "--data", str(synthetic_root), "--json", "--eval-images", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("miou", "per_class_iou", "pixel_accuracy", "boundary_f", "boundary_tolerance_px", "images_per_s"):
        assert key in result
    assert set(result["per_class_iou"]) == set(read_meta(out).class_names)


def test_bad_cli_input_exits_nonzero_with_one_line(synthetic_root, tmp_path, capsys):
    assert main(["train", "--arch", "unet_tiy", "--data", str(synthetic_root), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "unet_tiny" in err and len(err.splitlines()) == 1
    assert main(["eval", str(tmp_path / "missing.safetensors"), "--data", str(synthetic_root)]) == 2
    assert main(["train", "--arch", "unet_tiny", "--data", str(synthetic_root), "--out", str(tmp_path / "x.pt")]) == 2
    with pytest.raises(SystemExit):
        main(["train", "--arch", "unet_tiny", "--data", ".", "--out", "x.safetensors", "--crop-size", "48by64"])


def test_models_cli_lists_the_zoo(capsys):
    assert main(["models", "--json", "--input-size", "64x96"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    for name in ("lraspp_mobilenetv3_small", "fast_scnn", "bisenetv2", "unet_tiny", "deeplabv3_resnet18", "cgnet_m3n21", "espnet_p2q8"):
        assert rows[name]["params"] > 0 and rows[name]["macs"] > 0
