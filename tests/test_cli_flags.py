"""One meaning per flag: ``--device`` names a device profile everywhere; train/eval/distill take the PyTorch device as
``--torch-device``, and a bad or unavailable one is a one-line error before any work."""
from __future__ import annotations

import pytest
import torch

from edgekd.cli import main
from edgekd.errors import EdgekdError
from edgekd.torch_device import check_torch_device


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("warning:")]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_check_torch_device_accepts_cpu_and_auto():
    assert check_torch_device("cpu") == "cpu"
    assert check_torch_device(" auto ") == "auto"


def test_a_device_profile_name_is_not_a_torch_device():
    with pytest.raises(EdgekdError, match="jetson-orin-nano.*bench/doctor/estimate"):
        check_torch_device("jetson-orin-nano")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this PyTorch sees a CUDA GPU")
def test_cuda_on_a_cpu_only_torch_is_one_line(tmp_path, synthetic_root, capsys):
    code = main(["train", "--arch", "unet_tiny", "--data", str(synthetic_root), "--out", str(tmp_path / "s.safetensors"),
                 "--torch-device", "cuda"])
    assert code == 2
    line = _one_line(capsys)
    assert "'cuda'" in line and "--torch-device cpu" in line
    assert not (tmp_path / "s.safetensors").exists()


def test_eval_with_a_profile_in_old_device_flag_is_one_line(tiny_teacher, synthetic_root, capsys):
    code = main(["eval", str(tiny_teacher), "--data", str(synthetic_root), "--device", "jetson-orin-nano"])
    assert code == 2
    line = _one_line(capsys)
    assert "jetson-orin-nano" in line and "--torch-device" in line


def test_old_device_spelling_with_a_torch_name_still_works_with_a_warning(tiny_teacher, synthetic_root, capsys):
    code = main(["eval", str(tiny_teacher), "--data", str(synthetic_root), "--device", "cpu", "--eval-images", "1"])
    assert code == 0
    assert "use --torch-device cpu" in capsys.readouterr().err


def test_distill_arch_and_student_that_disagree_are_refused(tiny_teacher, synthetic_root, tmp_path, capsys):
    code = main(["distill", "--teacher", str(tiny_teacher), "--arch", "fast_scnn", "--student", "unet_tiny",
                 "--data", str(synthetic_root), "--out", str(tmp_path / "s.safetensors")])
    assert code == 2
    line = _one_line(capsys)
    assert "'fast_scnn'" in line and "'unet_tiny'" in line and "disagree" in line
    assert not (tmp_path / "s.safetensors").exists()


def test_distill_lists_its_losses_with_options(capsys):
    from edgekd.losses import list_losses

    assert main(["distill", "--list-losses"]) == 0
    out = capsys.readouterr().out
    assert "NAME[(KEY=VALUE,...)][@FEATURE" in out
    for entry in list_losses():
        assert f"\n{entry.name} " in out
    assert "thresh=0.7, min_kept=10000" in out  # ohem's options with their defaults
    assert "ignore_index" not in out  # filled in by the objective, not a spec option


def test_export_lists_precisions_per_backend(capsys):
    from edgekd.backends.registry import get_backend, list_backends

    assert main(["export", "--list-precisions"]) == 0
    out = capsys.readouterr().out
    for name in list_backends():
        assert any(line.startswith(name) and ", ".join(get_backend(name).precisions) in line for line in out.splitlines())


def test_export_without_checkpoint_or_out_is_one_line(capsys):
    assert main(["export", "--backend", "onnxruntime"]) == 2
    assert "missing CHECKPOINT and --out" in _one_line(capsys)


def test_a_closed_pipe_is_not_an_internal_error():
    import subprocess
    import sys

    done = subprocess.run(f"{sys.executable} -m edgekd export --list-precisions | head -1", shell=True,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.startswith("backend") and "internal error" not in done.stderr and "Traceback" not in done.stderr
