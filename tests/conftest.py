"""Shared fixtures: a small synthetic dataset made once per session, and the ../shared folder."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))

SHARED = Path(__file__).resolve().parents[2] / "shared"
CAMVID = SHARED / "data" / "camvid"
MODELS = SHARED / "models"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (real data lives in ../shared beside the checkout)")
    return path


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A tiny synthetic AR dataset (folder layout) shared by the tests of a session."""
    from edgekd.data import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("synth") / "ds", num_train=12, num_val=4, size=(64, 96), seed=0)
