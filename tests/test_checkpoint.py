"""Checkpoints: safetensors round trip, third-party state dicts, refusal of code-running pickles."""
from __future__ import annotations

import pickle

import pytest
import torch

from edgekd.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from edgekd.models import create_model


def _meta(arch: str) -> CheckpointMeta:
    return CheckpointMeta(
        arch=arch, num_classes=3, class_names=["a", "b", "c"], ignore_index=255, input_size=[64, 96],
        mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], trained_with={"method": "test"},
    )


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    model = create_model("unet_tiny", num_classes=3).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, _meta("unet_tiny"))
    loaded, meta = load_checkpoint(path)
    assert meta.arch == "unet_tiny" and meta.class_names == ["a", "b", "c"] and meta.params > 0
    x = torch.randn(1, 3, 64, 96)
    torch.testing.assert_close(loaded(x), model(x))
    assert read_meta(path).trained_with == {"method": "test"}


def test_third_party_state_dict_loads_with_arch(tmp_path):
    model = create_model("unet_tiny", num_classes=3)
    torch.save({"epoch": 3, "model": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "x.pth")
    loaded, meta = load_checkpoint(tmp_path / "x.pth", arch="unet_tiny", num_classes=3)
    assert meta.trained_with["method"] == "imported"
    with pytest.raises(CheckpointError, match="--arch"):
        load_checkpoint(tmp_path / "x.pth")


class _Exploit:
    def __reduce__(self):
        return (print, ("this would have run",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": _Exploit()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path, arch="unet_tiny")


def test_other_architecture_names_mismatching_keys(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", create_model("unet_tiny", num_classes=3), _meta("unet_tiny"))
    with pytest.raises(CheckpointError, match="missing|unexpected"):
        load_checkpoint(path, arch="fast_scnn", num_classes=3)


def test_bad_paths_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match=".safetensors"):
        save_checkpoint(tmp_path / "m.pt", create_model("unet_tiny", num_classes=3), _meta("unet_tiny"))
