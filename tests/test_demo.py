"""The demo's logic (not its timing): KD students and their no-KD twins, and the held-out table."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from edgekd.checkpoint import CheckpointMeta, save_checkpoint
from edgekd.demo import (
    HELDOUT_SPLIT, STUDENTS, DemoConfig, KDPair, StudentRecipe, kd_pairs, kd_pairs_markdown, student_configs,
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


def _fake_checkpoint(path: Path, miou: float, images: int = 32) -> Path:
    model = create_model("unet_tiny", num_classes=3)
    meta = CheckpointMeta(arch="unet_tiny", num_classes=3, class_names=["a", "b", "c"], ignore_index=255,
                          input_size=[32, 32], mean=[0.0] * 3, std=[1.0] * 3, metrics={"miou": miou, "images": images})
    return save_checkpoint(path, model, meta)


def test_kd_pairs_read_heldout_miou_and_render_a_table_naming_the_split(tmp_path):
    paths = [_fake_checkpoint(tmp_path / "s-baseline.safetensors", 0.30), _fake_checkpoint(tmp_path / "s-kd.safetensors", 0.3125),
             _fake_checkpoint(tmp_path / "lonely-kd.safetensors", 0.5)]  # no twin: not a pair
    pairs = kd_pairs(paths)
    assert pairs == [KDPair("s", 0.30, 0.3125, 32)]
    assert pairs[0].delta_points == pytest.approx(1.25)
    text = kd_pairs_markdown(pairs)
    assert f"held-out synthetic split '{HELDOUT_SPLIT}' (32 images" in text
    assert "| s | 30.00 | 31.25 | +1.25 |" in text


def test_kd_pairs_refuse_twins_scored_on_different_images(tmp_path):
    paths = [_fake_checkpoint(tmp_path / "s-baseline.safetensors", 0.3, images=16), _fake_checkpoint(tmp_path / "s-kd.safetensors", 0.3)]
    with pytest.raises(EdgekdError, match="scored on 32 images, its twin on 16"):
        kd_pairs(paths)


def test_edgekd_demo_defaults_are_the_demo_recipe_schedule():
    from edgekd.cli import build_parser

    args = build_parser().parse_args(["demo"])
    assert (args.teacher_epochs, args.student_epochs) == (DemoConfig.teacher_epochs, DemoConfig.student_epochs)
