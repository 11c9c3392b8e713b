"""Students started from weights (--init), resolution distillation, function matching, held-out splits."""
from __future__ import annotations

import pytest
import torch

from edgekd.checkpoint import CheckpointError, load_checkpoint, read_meta, sha256_file
from edgekd.data import open_dataset
from edgekd.data.info import DataError
from edgekd.data.layouts import split_filter
from edgekd.losses.combine import drop_void_channel
from edgekd.errors import EdgekdError
from edgekd.training import TrainConfig, train_supervised
from edgekd.training.augment import PhotometricAugment, cutmix
from edgekd.training.distill import DistillConfig, distill

from conftest import CAMVID, MODELS, SMALL_RUN, require_shared

SMALL = SMALL_RUN


def test_init_starts_from_the_weights_and_records_their_sha(synthetic_root, tiny_teacher, tmp_path):
    out = tmp_path / "ft.safetensors"
    # lr tiny: after a step the weights must still be those of the tiny_teacher, to within the update
    cfg = DistillConfig(arch=None, data=str(synthetic_root), out=str(out), teachers=[str(tiny_teacher)], init=str(tiny_teacher),
                        losses=["ce", "kd(tau=1):1"], lr=1e-9, **SMALL)
    distill(cfg)
    meta = read_meta(out)
    assert meta.arch == "unet_tiny" and meta.init["sha256"] == sha256_file(tiny_teacher)
    start, _ = load_checkpoint(tiny_teacher)
    tuned, _ = load_checkpoint(out)
    diffs = [float((a - b).abs().max()) for (k, a), b in zip(start.state_dict().items(), tuned.state_dict().values())
             if a.is_floating_point() and "running" not in k]
    assert max(diffs) < 1e-5


def test_init_of_another_architecture_names_the_mismatched_keys(synthetic_root, tiny_teacher, tmp_path):
    cfg = DistillConfig(arch="fast_scnn", data=str(synthetic_root), out=str(tmp_path / "x.safetensors"),
                        init=str(tiny_teacher), losses=["ce"], **SMALL)
    with pytest.raises(CheckpointError, match=r"missing: .*unexpected: "):
        distill(cfg)
    assert not (tmp_path / "x.safetensors").exists()


def test_resolution_distillation_runs_the_student_at_its_own_size(synthetic_root, tiny_teacher, tmp_path):
    out = tmp_path / "small.safetensors"
    cfg = DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), teachers=[str(tiny_teacher)], init=str(tiny_teacher),
                        losses=["ce", "kd(tau=1):1"], cache="off", student_size=(32, 48), color_jitter=0.3, cutmix=1.0, **SMALL)
    distill(cfg)
    meta = read_meta(out)
    assert meta.input_size == [32, 48] and meta.trained_with["student_size"] == [32, 48]
    assert meta.trained_with["augment"]["cutmix"] == 1.0


def test_function_matching_augments_need_a_live_teacher(synthetic_root, tiny_teacher, tmp_path):
    cfg = DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(tmp_path / "c.safetensors"), teachers=[str(tiny_teacher)],
                        losses=["ce", "kd:1"], cache="on", color_jitter=0.2, cache_dir=str(tmp_path / "cache"), **SMALL)
    with pytest.raises(EdgekdError, match="--cache off"):
        distill(cfg)


def test_cutmix_pastes_labels_with_their_pixels():
    g = torch.Generator().manual_seed(0)
    image = torch.stack([torch.full((3, 20, 30), 10.0), torch.full((3, 20, 30), 200.0)])
    mask = torch.stack([torch.zeros(20, 30, dtype=torch.long), torch.ones(20, 30, dtype=torch.long)])
    mixed, labels = cutmix(g, image, mask, probability=1.0)
    pasted = labels[0] == 1  # frame 0 received a rectangle of frame 1
    assert 0.05 < pasted.float().mean() < 0.6
    assert torch.all(mixed[0][:, pasted] == 200.0) and torch.all(mixed[0][:, ~pasted] == 10.0)
    assert torch.equal(image[0], torch.full((3, 20, 30), 10.0))  # inputs untouched


def test_photometric_jitter_stays_in_range_and_zero_strength_is_identity():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(4, 3, 8, 8) * 255
    assert torch.equal(PhotometricAugment(0.0)(g, image), image)
    out = PhotometricAugment(0.5)(g, image)
    assert out.min() >= 0 and out.max() <= 255 and not torch.allclose(out, image)


def test_void_channel_of_a_student_is_left_out_of_teacher_terms():
    student, teacher = torch.randn(2, 12, 4, 4), torch.randn(2, 11, 4, 4)
    assert torch.equal(drop_void_channel(student, teacher), student[:, :11])
    assert drop_void_channel(teacher, teacher) is teacher


def test_split_filter_syntax_and_errors():
    assert split_filter("train") == ("train", (), True)
    assert split_filter("train:0006R0") == ("train", ("0006R0",), True)
    assert split_filter("train:-0006R0,0001TP") == ("train", ("0006R0", "0001TP"), False)
    with pytest.raises(DataError, match="SPLIT:PREFIX"):
        split_filter("train:")


def test_leave_one_drive_out_split_of_camvid():
    root = require_shared(CAMVID)
    held = open_dataset(root, "train:0006R0")
    rest = open_dataset(root, "train:-0006R0")
    assert len(held) == 101 and len(rest) == 266 and len(open_dataset(root, "train")) == 367
    assert not {p[0].name for p in held.pairs} & {p[0].name for p in rest.pairs}
    with pytest.raises(DataError, match="no file name"):
        open_dataset(root, "train:Seq05VD")


def test_heldout_split_is_reported_every_epoch(synthetic_root, tmp_path):
    out = tmp_path / "b.safetensors"
    outcome = train_supervised(TrainConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), epochs=1, batch_size=2,
                                           crop_size=(48, 64), max_steps_per_epoch=1, val_images=2, heldout_split="train"))
    assert 0 <= outcome.history[0]["val_heldout_miou"] <= 1
    assert read_meta(out).metrics["heldout_split"] == "train"


def test_a_safetensors_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    import json as _json

    from safetensors.torch import save_file

    from edgekd.checkpoint import _check_safetensors_file

    for pad in range(300):  # find metadata whose header length has low byte 0x80
        path = tmp_path / "w.safetensors"
        save_file({"w": torch.zeros(2)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    _check_safetensors_file(path)  # a valid file: no error
    assert _json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])["__metadata__"]["pad"]


def test_freeze_bn_keeps_the_pretrained_statistics_while_weights_train(synthetic_root, tiny_teacher, tmp_path):
    out = tmp_path / "ft.safetensors"
    cfg = DistillConfig(arch=None, data=str(synthetic_root), out=str(out), init=str(tiny_teacher), losses=["ce"],
                        freeze_bn=True, **{**SMALL, "lr": 0.05})
    distill(cfg)
    start, _ = load_checkpoint(tiny_teacher)
    tuned, _ = load_checkpoint(out)
    before, after = start.state_dict(), tuned.state_dict()
    stats = [k for k in before if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(before[k], after[k]) for k in stats)
    weights = [k for k in before if k.endswith("weight") and before[k].dim() == 4]
    assert any(not torch.equal(before[k], after[k]) for k in weights)


def test_a_student_with_a_void_channel_keeps_it_in_its_checkpoint(tmp_path):
    """ESPNet's CamVid head (11 classes + void) fine-tuned: the saved checkpoint keeps 12 outputs and reloads."""
    espnet = require_shared(MODELS / "espnet_p2q8_camvid.pth")
    out = tmp_path / "ft.safetensors"
    distill(DistillConfig(arch=None, data=str(CAMVID), out=str(out), init=str(espnet), init_arch="espnet_p2q8",
                          losses=["ce"], optimizer="adamw", lr=1e-5, freeze_bn=True, **SMALL))
    tuned, meta = load_checkpoint(out)
    assert tuned.num_classes == meta.num_classes == 12
    assert meta.class_names[-1] == "void" and meta.metrics["miou"] > 0.5
