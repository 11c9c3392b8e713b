"""tools/demo_kd_check.py --reuse: what it may take from an earlier run (scenes, a teacher of the same
epochs, no-KD twins of the same config) and what it must retrain (no real training here)."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from edgekd.checkpoint import CheckpointMeta, save_checkpoint
from edgekd.demo import IMAGE_SIZE, DemoConfig, StudentRecipe, student_configs
from edgekd.models import create_model

from conftest import load_tool as load_conftest_tool

REPO = Path(__file__).resolve().parents[1]


def load_tool():
    return load_conftest_tool("demo_kd_check")


def _checkpoint(path: Path, trained_with: dict) -> None:
    meta = CheckpointMeta(arch="unet_tiny", num_classes=3, class_names=["a", "b", "c"], ignore_index=255, input_size=[32, 32],
                          mean=[0.0] * 3, std=[1.0] * 3, trained_with=json.loads(json.dumps(trained_with)), metrics={"miou": 0.3})
    save_checkpoint(path, create_model("unet_tiny", num_classes=3), meta)
    path.with_name(path.name.replace(".safetensors", ".train_state.pt")).write_bytes(b"state")


def _earlier_run(root: Path, cfg: DemoConfig) -> Path:
    """A finished seed folder of an earlier --out: scenes, teacher, cache and both twins trained with ``cfg``."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "dataset.yaml").write_text("classes: [a, b, c]\n")
    (root / "data" / "synthetic.json").write_text(json.dumps({"seed": cfg.seed, "num_train": cfg.num_train,
                                                              "num_val": cfg.num_val, "size": list(IMAGE_SIZE)}))
    (root / "teacher_cache" / "key").mkdir(parents=True)
    (root / "teacher_cache" / "key" / "logits.npy").write_bytes(b"logits")
    _checkpoint(root / "checkpoints" / "teacher.safetensors", {"epochs_completed": cfg.teacher_epochs})
    for twin, _ in student_configs(replace_out(cfg, root), root / "data", root / "checkpoints" / "teacher.safetensors"):
        _checkpoint(Path(twin.out), {"epochs_completed": twin.epochs, "config": asdict(twin)})
    return root


def replace_out(cfg: DemoConfig, out: Path) -> DemoConfig:
    return DemoConfig(out=out, seed=cfg.seed, teacher_epochs=cfg.teacher_epochs, student_epochs=cfg.student_epochs, recipe=cfg.recipe)


def test_reuse_takes_teacher_and_twins_when_a_new_kd_recipe_leaves_them_unchanged(tmp_path):
    tool = load_tool()
    source = _earlier_run(tmp_path / "old" / "seed1", DemoConfig(seed=1, teacher_epochs=20))
    # a different KD recipe (temperature, teacher terms): the twins never see them, so they are reused
    cfg = DemoConfig(out=tmp_path / "new" / "seed1", seed=1, teacher_epochs=20, recipe=StudentRecipe(kd=("kd:1",), temperature=1.0))
    linked = tool.reuse_runs(cfg, source)
    assert linked == ["scenes", "20-epoch teacher", "unet_tiny-baseline", "lraspp_mobilenetv3_small-baseline"]
    ckpt = cfg.out / "checkpoints"
    assert (ckpt / "teacher.train_state.pt").read_bytes() == b"state"
    assert (cfg.out / "teacher_cache" / "key" / "logits.npy").read_bytes() == b"logits"
    assert not (ckpt / "unet_tiny-kd.safetensors").exists()  # the KD students are the new recipe's to train
    assert tool.reuse_runs(cfg, source) == []  # nothing is linked twice


def test_reuse_retrains_what_a_changed_schedule_or_seed_would_change(tmp_path):
    tool = load_tool()
    source = _earlier_run(tmp_path / "old" / "seed0", DemoConfig(seed=0, teacher_epochs=20))
    # other teacher epochs and another student lr: only the scenes are the same
    cfg = DemoConfig(out=tmp_path / "new" / "seed0", seed=0, teacher_epochs=5, recipe=StudentRecipe(lr=0.1))
    assert tool.reuse_runs(cfg, source) == ["scenes"]
    assert not (cfg.out / "checkpoints").exists()
    # more student epochs: the teacher is reused, the twins are not
    cfg = DemoConfig(out=tmp_path / "longer" / "seed0", seed=0, teacher_epochs=20, student_epochs=6)
    assert tool.reuse_runs(cfg, source) == ["scenes", "20-epoch teacher"]
    # another seed draws other scenes: nothing at all
    assert tool.reuse_runs(DemoConfig(out=tmp_path / "other" / "seed0", seed=2, teacher_epochs=20), source) == []
