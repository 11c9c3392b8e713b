"""Distillation: trainer, teacher cache, multi-teacher mixing, recipes (TA chains)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from edgekd.checkpoint import read_meta
from edgekd.errors import EdgekdError
from edgekd.training import TrainConfig, train_supervised
from edgekd.training.augment import JointAugment
from edgekd.training.distill import DistillConfig, distill
from edgekd.training.multi_teacher import mix_teacher_logits
from edgekd.training.recipe import load_recipe
from edgekd.training.teacher_cache import build_or_open_cache

from conftest import SMALL_RUN

SMALL = SMALL_RUN


@pytest.fixture(scope="module")
def teacher_ckpt(tiny_teacher):
    return tiny_teacher


def test_distill_records_provenance_and_kd_metrics(synthetic_root, teacher_ckpt, tmp_path):
    out = tmp_path / "student.safetensors"
    cfg = DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), teachers=[str(teacher_ckpt)],
                        losses=["ce", "kd:1", "cwd:2"], cache_dir=str(tmp_path / "cache"), **SMALL)
    distill(cfg)
    meta = read_meta(out)
    tw = meta.trained_with
    assert tw["method"] == "distill" and tw["losses"] == {"ce": 1.0, "kd": 1.0, "cwd": 2.0}
    assert tw["teacher_cache"]["used"] is True and len(tw["teacher_sha256"][0]) == 64
    kd = meta.metrics["kd"]
    assert kd["teacher_student_kl"] >= 0 and -1 <= kd["probability_correlation"] <= 1
    assert kd["distillation_factor"] == pytest.approx(1.0)  # same architecture
    assert math.isfinite(kd["relative_error"])


def test_feature_losses_run_the_teacher_live(synthetic_root, teacher_ckpt, tmp_path):
    out = tmp_path / "student.safetensors"
    cfg = DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), teachers=[str(teacher_ckpt)],
                        losses=["ce", "at@pre_logits:1"], **SMALL)
    distill(cfg)
    assert read_meta(out).trained_with["teacher_cache"]["used"] is False
    with pytest.raises(EdgekdError, match="cache on"):
        distill(DistillConfig(**{**cfg.__dict__, "cache": "on"}))


def test_cached_logits_equal_live_teacher_logits(synthetic_root, teacher_ckpt, tmp_path):
    from edgekd.checkpoint import load_checkpoint
    from edgekd.data import build_eval_transform, open_dataset

    teacher, _ = load_checkpoint(teacher_ckpt)
    ds = open_dataset(synthetic_root, "train", transform=build_eval_transform(None))
    cache = build_or_open_cache(teacher, teacher.normalization, ds, teacher_sha="ab" * 32, cache_dir=tmp_path)
    assert cache.build_seconds > 0
    again = build_or_open_cache(teacher, teacher.normalization, ds, teacher_sha="ab" * 32, cache_dir=tmp_path)
    assert again.build_seconds == 0.0  # reused, not recomputed
    image, _ = ds[3]
    with torch.inference_mode():
        live = teacher(teacher.normalization.apply(image[None]))
    torch.testing.assert_close(cache.batch(torch.tensor([3])), live, atol=2e-2, rtol=2e-3)  # float16 storage


def test_joint_augment_keeps_image_labels_and_logits_aligned():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    blocks = torch.randint(0, 4, (2, 1, 6, 8)).float()  # 5×5-pixel blocks survive resampling
    labels = torch.nn.functional.interpolate(blocks, size=(30, 40), mode="nearest")[:, 0].long()
    image = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2)[:, :3].float() * 255  # class 3 = black
    logits = torch.nn.functional.one_hot(labels, 4).permute(0, 3, 1, 2).float() * 10
    aug = JointAugment(crop_size=(24, 32), scale_range=(0.8, 1.6), ignore_index=255)
    for _ in range(5):
        img, lab, lg = aug(gen, image, labels, logits)
        assert img.shape == (2, 3, 24, 32) and lab.shape == (2, 24, 32) and lg.shape == (2, 4, 24, 32)
        valid = lab != 255
        # away from resampling blur, the label, the image value and the logit argmax agree
        agree = (lg.argmax(1) == lab)[valid].float().mean()
        assert agree > 0.9
        unblended = valid & ((img == 0) | (img == 255)).all(1)  # pixels away from block edges
        decoded = torch.where(img.amax(1) == 255, img.argmax(1), 3)
        assert (decoded == lab)[unblended].float().mean() > 0.99


def test_mixing_teachers_average_and_confidence():
    a = torch.tensor([[[[4.0]], [[0.0]]]])  # confident in class 0
    b = torch.tensor([[[[0.0]], [[0.2]]]])  # unsure, slightly class 1
    pa, pb = a.softmax(1), b.softmax(1)
    avg = mix_teacher_logits([a, b], [1, 1], "average").exp()
    torch.testing.assert_close(avg, (pa + pb) / 2)
    conf = mix_teacher_logits([a, b], [1, 1], "confidence").exp()
    ca, cb = pa.max(), pb.max()
    torch.testing.assert_close(conf, (ca * pa + cb * pb) / (ca + cb))
    with pytest.raises(EdgekdError):
        mix_teacher_logits([a, b], [1], "average")
    with pytest.raises(EdgekdError):
        mix_teacher_logits([a, b], None, "vote")


def test_recipe_chain_resolves_stage_outputs_and_rejects_unknown_keys(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "common: {data: d, epochs: 2, crop_size: [48, 64]}\n"
        "stages:\n"
        "  - {name: ta, student: unet_tiny, teachers: [t.safetensors], out: ta.safetensors}\n"
        "  - {name: s, student: fast_scnn, teachers: ['@ta'], losses: [ce, 'kd:2'], out: s.safetensors}\n"
    )
    stages = load_recipe(recipe)
    assert [n for n, _ in stages] == ["ta", "s"]
    assert stages[1][1].teachers == ["ta.safetensors"] and stages[1][1].crop_size == (48, 64)
    recipe.write_text("student: unet_tiny\nteachers: [t]\nout: s.safetensors\ndata: d\nlearning_rate: 3\n")
    with pytest.raises(EdgekdError, match="learning_rate"):
        load_recipe(recipe)
    recipe.write_text("stages:\n  - {student: unet_tiny, teachers: ['@nope'], out: s.safetensors, data: d}\n")
    with pytest.raises(EdgekdError, match="@nope"):
        load_recipe(recipe)


def test_teacher_assistant_chain_runs_end_to_end(synthetic_root, teacher_ckpt, tmp_path):
    from edgekd.cli import main

    recipe = tmp_path / "chain.yaml"
    recipe.write_text(
        f"common: {{data: {synthetic_root}, epochs: 1, batch_size: 2, crop_size: [48, 64], max_steps_per_epoch: 1, eval_images: 1, kd_metric_images: 1}}\n"
        "stages:\n"
        f"  - {{name: ta, student: unet_tiny, teachers: [{teacher_ckpt}], losses: [ce, kd], out: {tmp_path / 'ta.safetensors'}, cache: off}}\n"
        f"  - {{name: s, student: unet_tiny, teachers: ['@ta'], losses: [ce, dist], out: {tmp_path / 's.safetensors'}, cache: off}}\n"
    )
    assert main(["distill", "--recipe", str(recipe), "--no-progress"]) == 0
    ta_sha = read_meta(tmp_path / "s.safetensors").trained_with["teacher_sha256"][0]
    from edgekd.checkpoint import sha256_file

    assert ta_sha == sha256_file(tmp_path / "ta.safetensors")


def test_class_count_mismatch_is_a_clear_error(synthetic_root, tmp_path):
    from edgekd.checkpoint import CheckpointMeta, save_checkpoint
    from edgekd.models import create_model

    t = create_model("unet_tiny", num_classes=3)
    meta = CheckpointMeta(arch="unet_tiny", num_classes=3, class_names=list("abc"), ignore_index=255,
                          input_size=[48, 64], mean=[0.0] * 3, std=[1.0] * 3)
    path = save_checkpoint(tmp_path / "t3.safetensors", t, meta)
    with pytest.raises(EdgekdError, match="3 classes"):
        distill(DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(tmp_path / "s.safetensors"), teachers=[str(path)], **SMALL))


def test_ce_only_run_needs_no_teacher_and_is_recorded_as_supervised(synthetic_root, tmp_path):
    out = tmp_path / "baseline.safetensors"
    distill(DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), losses=["ce"], **SMALL))
    meta = read_meta(out)
    assert meta.trained_with["method"] == "supervised" and meta.trained_with["teachers"] == []
    assert "kd" not in meta.metrics
    with pytest.raises(EdgekdError, match="need a teacher"):
        distill(DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), losses=["ce", "kd"], **SMALL))


def test_run_stages_runs_in_order_and_summarises_each(monkeypatch, tmp_path):
    """The recipe loop the CLI and scripts share: stages in order, one summary each, the callback per stage."""
    from edgekd.training import recipe as recipe_module
    from edgekd.training.loop import TrainOutcome
    from edgekd.training.recipe import run_stages

    ran, done = [], []

    def fake_distill(cfg, progress=None):
        ran.append(cfg.out)
        return TrainOutcome(Path(cfg.out), 1, [{"epoch": 1, "val_miou": 0.5}], wall_s=2.0)

    monkeypatch.setattr(recipe_module, "distill", fake_distill)
    stages = [(n, DistillConfig(arch="unet_tiny", data="d", out=str(tmp_path / f"{n}.safetensors"), teachers=["t"]))
              for n in ("ta", "s")]
    summaries = run_stages(stages, on_stage_done=lambda name, outcome: done.append((name, outcome.checkpoint.name)))
    assert ran == [str(tmp_path / "ta.safetensors"), str(tmp_path / "s.safetensors")]
    assert done == [("ta", "ta.safetensors"), ("s", "s.safetensors")]
    assert summaries[1] == {"stage": "s", "checkpoint": str(tmp_path / "s.safetensors"), "wall_s": 2.0,
                            "last_epoch": {"epoch": 1, "val_miou": 0.5}, "teacher_cache": []}


def test_cli_summary_separates_cache_build_from_training_and_says_where_the_cache_is(synthetic_root, teacher_ckpt, tmp_path, capsys):
    """First run: the cache is built (its seconds printed apart from training); second run: reused, same folder."""
    import json

    from edgekd.cli import main

    cache_dir = tmp_path / "cache"
    argv = ["distill", "--teacher", str(teacher_ckpt), "--student", "unet_tiny", "--data", str(synthetic_root),
            "--loss", "ce", "--loss", "kd", "--cache-dir", str(cache_dir), "--epochs", "1", "--batch-size", "2",
            "--crop-size", "48x64", "--max-steps-per-epoch", "1", "--eval-images", "2", "--no-progress"]
    assert main(argv + ["--out", str(tmp_path / "a.safetensors"), "--json"]) == 0
    (first,) = json.loads(capsys.readouterr().out)
    (cache,) = first["teacher_cache"]
    assert cache["built"] is True and cache["build_seconds"] > 0 and first["wall_s"] > 0
    assert Path(cache["path"]).parent == cache_dir and (Path(cache["path"]) / "logits.f16").is_file()
    from edgekd.cli.distill import stage_summary
    from edgekd.training.loop import TrainOutcome

    lines = stage_summary("main", TrainOutcome(Path(first["checkpoint"]), 1, [first["last_epoch"]], first["wall_s"], [cache]))
    assert f"training {first['wall_s']:.1f} s" in lines[0]
    assert lines[1] == f"[main] teacher-logit cache built now in {cache['build_seconds']:.1f} s: {cache['path']}"

    assert main(argv + ["--out", str(tmp_path / "b.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "training " in out and f"teacher-logit cache reused (built by an earlier run): {cache['path']}" in out
    assert "built now" not in out
