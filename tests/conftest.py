"""Shared fixtures: a small synthetic dataset made once per session, and the ../shared folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED = Path(__file__).resolve().parents[2] / "shared"
CAMVID = SHARED / "data" / "camvid"
MODELS = SHARED / "models"


def load_tool(name: str):
    """Import ``tools/NAME.py`` (the tools are scripts, not a package) as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (real data lives in ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny synthetic AR dataset (folder layout) shared by the tests of a session."""
    from edgekd.data import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", num_train=12, num_val=4, size=(64, 96), seed=0)


# A one-epoch, few-step run: enough to exercise the trainers on the tiny synthetic dataset.
SMALL_RUN = dict(epochs=1, batch_size=2, crop_size=(48, 64), max_steps_per_epoch=2, val_images=2, seed=0, kd_metric_images=2)


@pytest.fixture(scope="session")
def tiny_teacher(synthetic_root, tmp_path_factory) -> Path:
    """A unet_tiny checkpoint trained for a few steps: the teacher (or init) of the distillation tests."""
    from edgekd.training import TrainConfig, train_supervised

    out = tmp_path_factory.mktemp("teacher") / "teacher.safetensors"
    train_supervised(TrainConfig(arch="unet_tiny", data=str(synthetic_root), out=str(out), epochs=1, batch_size=2,
                                 crop_size=(48, 64), max_steps_per_epoch=3, val_images=2))
    return out
