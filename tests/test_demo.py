"""The demo's logic (not its timing): KD students and their no-KD twins, and the held-out table."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from edgekd.checkpoint import CheckpointMeta, save_checkpoint
from edgekd.demo import (
    HELDOUT_SPLIT, STUDENTS, DemoConfig, DemoResult, KDPair, StudentRecipe, kd_pairs, kd_pairs_markdown, kd_summaries,
    student_configs, student_seeds, train_demo_models,
)
from edgekd.losses import parse_specs
from edgekd.losses import get_loss_entry
from edgekd.errors import EdgekdError
from edgekd.models import create_model

TEACHER_FIELDS = {"out", "teachers", "losses", "temperature", "teacher_tta", "cache_dir"}


@pytest.mark.parametrize("recipe", [StudentRecipe(), StudentRecipe(supervised=("ohem(min_kept=500)",), kd=("dist:2",),
                                                                     teacher_tta="flip", class_weights="enet")])
def test_each_kd_student_has_a_twin_that_differs_only_in_the_teacher_terms(tmp_path, recipe):
    pairs = student_configs(DemoConfig(out=tmp_path, seed=3, recipe=recipe), tmp_path / "data", tmp_path / "teacher.safetensors")
    assert [twin.arch for twin, _ in pairs] == list(STUDENTS)
    for twin, student in pairs:
        a, b = asdict(twin), asdict(student)
        assert {k: v for k, v in a.items() if k not in TEACHER_FIELDS} == {k: v for k, v in b.items() if k not in TEACHER_FIELDS}
        assert twin.seed == 3 and twin.teachers == [] and student.teachers == [str(tmp_path / "teacher.safetensors")]
        # the twin keeps every label term of the KD student and nothing that needs a teacher
        assert student.losses == [*twin.losses, *recipe.kd] and twin.class_weights == recipe.class_weights
        assert not any(get_loss_entry(s.name).needs_teacher for s in parse_specs(twin.losses))
        assert all(get_loss_entry(s.name).needs_teacher for s in parse_specs(list(recipe.kd)))
        assert Path(twin.out).stem == f"{twin.arch}-baseline" and Path(student.out).stem == f"{twin.arch}-kd"


def _fake_checkpoint(path: Path, miou: float, images: int = 32, seed: int | None = None) -> Path:
    model = create_model("unet_tiny", num_classes=3)
    meta = CheckpointMeta(arch="unet_tiny", num_classes=3, class_names=["a", "b", "c"], ignore_index=255,
                          input_size=[32, 32], mean=[0.0] * 3, std=[1.0] * 3, metrics={"miou": miou, "images": images},
                          trained_with={} if seed is None else {"seed": seed})
    return save_checkpoint(path, model, meta)


def test_kd_pairs_read_heldout_miou_and_render_a_table_naming_the_split(tmp_path):
    paths = [_fake_checkpoint(tmp_path / "s-baseline.safetensors", 0.30), _fake_checkpoint(tmp_path / "s-kd.safetensors", 0.3125),
             _fake_checkpoint(tmp_path / "lonely-kd.safetensors", 0.5)]  # no twin: not a pair
    pairs = kd_pairs(paths)
    assert pairs == [KDPair("s", 0.30, 0.3125, 32)]
    assert pairs[0].delta_points == pytest.approx(1.25)
    text = kd_pairs_markdown(pairs)
    assert f"held-out synthetic split '{HELDOUT_SPLIT}' (32 images" in text
    assert "| s | 30.00 | 31.25 | +1.25 | +1.25 | ? | 1 of 1 |" in text


def test_student_seeds_after_the_first_train_in_their_own_folder(tmp_path):
    cfg = DemoConfig(out=tmp_path, seed=5, student_seeds=3)
    assert student_seeds(cfg) == [5, 6, 7]
    first = student_configs(cfg, tmp_path / "data", tmp_path / "t.safetensors")
    third = student_configs(cfg, tmp_path / "data", tmp_path / "t.safetensors", seed=7)
    assert Path(first[0][0].out).parent == tmp_path / "checkpoints" and first[0][0].seed == 5
    assert Path(third[0][1].out) == tmp_path / "checkpoints" / "seed7" / f"{STUDENTS[0]}-kd.safetensors" and third[0][1].seed == 7


def test_kd_summary_averages_each_students_seeds_and_counts_the_wins(tmp_path):
    paths = []
    for seed, (base, kd) in enumerate([(0.30, 0.28), (0.20, 0.26), (0.25, 0.27)]):
        folder = tmp_path / ("" if seed == 0 else f"seed{seed}")
        paths += [_fake_checkpoint(folder / "s-baseline.safetensors", base, seed=seed), _fake_checkpoint(folder / "s-kd.safetensors", kd, seed=seed)]
    pairs = kd_pairs(paths)
    assert [p.seed for p in pairs] == [0, 1, 2]
    (summary,) = kd_summaries(pairs)
    assert summary.no_kd_mean == pytest.approx(0.25) and summary.kd_mean == pytest.approx(0.27)
    assert summary.mean_delta_points == pytest.approx(2.0) and summary.wins == 2
    text = kd_pairs_markdown(pairs)
    assert "3 seed(s)" in text and "| s | 25.00 | 27.00 | +2.00 | -2.00 / +6.00 / +2.00 | 0 / 1 / 2 | 2 of 3 |" in text


def test_demo_refuses_zero_student_seeds_before_writing_anything(tmp_path):
    with pytest.raises(EdgekdError, match="--student-seeds 0: give at least 1"):
        train_demo_models(DemoConfig(out=tmp_path / "out", student_seeds=0), DemoResult(), say=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_kd_pairs_refuse_twins_scored_on_different_images(tmp_path):
    paths = [_fake_checkpoint(tmp_path / "s-baseline.safetensors", 0.3, images=16), _fake_checkpoint(tmp_path / "s-kd.safetensors", 0.3)]
    with pytest.raises(EdgekdError, match="scored on 32 images, its twin on 16"):
        kd_pairs(paths)


def test_edgekd_demo_defaults_are_the_demo_recipe_schedule():
    from edgekd.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert (args.teacher_epochs, args.student_epochs) == (DemoConfig.teacher_epochs, DemoConfig.student_epochs)
