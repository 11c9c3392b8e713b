"""Teacher test-time augmentation (flip / scales) before the teacher-logit cache, and the
distillation run's class-balanced weights and TTA provenance."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgekd.checkpoint import read_meta
from edgekd.data import build_eval_transform, open_dataset
from edgekd.errors import EdgekdError
from edgekd.models.base import Normalization
from edgekd.training.distill import DistillConfig, distill
from edgekd.training.teacher_cache import build_or_open_cache, cache_key
from edgekd.training.teacher_tta import TeacherTTA, tta_logits

from conftest import SMALL_RUN


class ToyTeacher(nn.Module):
    """A 3×3 convolution; with a left-right symmetric kernel it is flip-equivariant."""

    def __init__(self, symmetric: bool, num_classes: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.normalization = Normalization((0.0, 0.0, 0.0), (255.0, 255.0, 255.0))
        self.conv = nn.Conv2d(3, num_classes, 3, padding=1, padding_mode="replicate")
        with torch.no_grad():
            w = torch.randn(self.conv.weight.shape, generator=torch.Generator().manual_seed(0))
            self.conv.weight.copy_((w + w.flip(-1)) / 2 if symmetric else w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


@torch.no_grad()
def test_flip_tta_of_a_flip_equivariant_teacher_equals_its_plain_output():
    teacher = ToyTeacher(symmetric=True)
    x = torch.rand(2, 3, 8, 10, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(tta_logits(teacher, x, TeacherTTA.parse("flip")), teacher(x), atol=1e-6, rtol=1e-6)


@torch.no_grad()
def test_flip_and_scale_tta_average_the_views_by_hand():
    teacher = ToyTeacher(symmetric=False)
    x = torch.rand(1, 3, 8, 12, generator=torch.Generator().manual_seed(2))
    plain, mirrored = teacher(x), teacher(x.flip(-1)).flip(-1)
    assert not torch.allclose(plain, mirrored)
    torch.testing.assert_close(tta_logits(teacher, x, TeacherTTA(flip=True)), (plain + mirrored) / 2)
    small = nn.functional.interpolate(x, size=(4, 6), mode="bilinear", align_corners=False)
    back = nn.functional.interpolate(teacher(small), size=(8, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(tta_logits(teacher, x, TeacherTTA(scales=(0.5,))), (plain + back) / 2)
    assert tta_logits(teacher, x, None).equal(plain)


@pytest.mark.parametrize(
    "text, flip, scales",
    [("flip", True, ()), ("flip,scales=0.75,1.25", True, (0.75, 1.25)), (" scales=1.25,0.75,1 ", False, (0.75, 1.25))],
)
def test_tta_spec_parses(text, flip, scales):
    tta = TeacherTTA.parse(text)
    assert (tta.flip, tta.scales) == (flip, scales)
    assert TeacherTTA.parse("none") is None and TeacherTTA.parse(None) is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("flop", r"unknown part 'flop'"),
        ("flip,scales=", r"scale '' is not a number"),
        ("flip,scales=0.75,big", r"scale 'big' is not a number"),
        ("scales=10", r"scale 10 must be between 0.25 and 4"),
        ("scales=1", r"at least one scale other than 1"),
    ],
)
def test_bad_tta_specs_are_one_line_errors(text, message):
    with pytest.raises(EdgekdError, match=message) as err:
        TeacherTTA.parse(text)
    assert "\n" not in str(err.value) and "--teacher-tta flip" in str(err.value)


def test_cache_key_includes_the_tta_setting_and_cached_flip_equals_plain(synthetic_root, tmp_path):
    keys = {cache_key("a" * 64, "b" * 64, (8, 8), 3, tta) for tta in
            (None, TeacherTTA(flip=True), TeacherTTA(flip=True, scales=(0.75, 1.25)), TeacherTTA(scales=(0.75, 1.25)))}
    assert len(keys) == 4
    assert cache_key("a" * 64, "b" * 64, (8, 8), 3) == f"{'a' * 16}-{'b' * 16}-8x8-c3"  # plain caches keep their key
    teacher = ToyTeacher(symmetric=True).eval()
    ds = open_dataset(synthetic_root, "train", transform=build_eval_transform(None))
    plain = build_or_open_cache(teacher, teacher.normalization, ds, teacher_sha="ab" * 32, cache_dir=tmp_path)
    flipped = build_or_open_cache(teacher, teacher.normalization, ds, teacher_sha="ab" * 32, cache_dir=tmp_path,
                                  tta=TeacherTTA(flip=True))
    assert plain.path != flipped.path and flipped.build_seconds > 0 and flipped.path.name.endswith("-tta-flip")
    index = torch.arange(len(ds))
    torch.testing.assert_close(flipped.batch(index), plain.batch(index), atol=2e-3, rtol=2e-3)  # float16 storage


def test_distill_records_tta_and_class_weights(synthetic_root, tiny_teacher, tmp_path):
    out = tmp_path / "student.safetensors"
    distill(DistillConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), teachers=[str(tiny_teacher)],
                          losses=["ohem(min_kept=100)", "kd:1"], class_weights="enet", teacher_tta="flip,scales=0.75",
                          cache_dir=str(tmp_path / "cache"), **SMALL_RUN))
    meta = read_meta(out)
    tw = meta.trained_with
    assert tw["teacher_tta"] == {"flip": True, "scales": [1.0, 0.75], "average": "logits"}
    assert tw["class_weights"]["method"] == "enet" and len(tw["class_weights"]["values"]) == meta.num_classes
    assert all(0 < w <= 1 / 0.0198 for w in tw["class_weights"]["values"])
    assert [p.name for p in (tmp_path / "cache").iterdir()][0].endswith("-tta-flip-s0.75")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"losses": ["ce"], "teachers": [], "teacher_tta": "flip"}, "needs a teacher term"),
        ({"teacher_tta": "mirror"}, "unknown part 'mirror'"),
        ({"class_weights": "inverse"}, "--class-weights 'inverse' is not one of enet, median"),
    ],
)
def test_bad_distill_settings_fail_before_training(synthetic_root, tiny_teacher, tmp_path, change, message):
    out = tmp_path / "student.safetensors"
    cfg = dict(arch="unet_tiny", data=str(synthetic_root), out=str(out), teachers=[str(tiny_teacher)], losses=["ce", "kd"],
               **SMALL_RUN)
    with pytest.raises(EdgekdError, match=message):
        distill(DistillConfig(**{**cfg, **change}))
    assert not out.exists()
