"""`edgekd train` / `edgekd distill` under a real torchrun launch (2 CPU processes, gloo), against one process.

The same global batch (1 process × 4 = 2 ranks × 2) and seed must give the same run:

* samples: one process shuffles with the permutation the ranks split (DistributedSampler, seed +
  epoch), and supervised augmentation is seeded per (seed, epoch, item), so both see the same
  pixels; distillation's batch augmentation draws the same parameters on every rank;
* BatchNorm: torch's SyncBatchNorm runs on GPUs only, so on CPU each rank would normalise its half
  batch. The runs here use ``--freeze-bn`` (BatchNorm in eval mode), which makes the comparison
  exact; what unfrozen BatchNorm changes is measured in docs/distributed.md;
* ignored pixels: the loss is a mean over a rank's valid pixels, so DDP's average of per-rank means
  equals one process's mean only when ranks have as many valid pixels: ``--scale-range 1,1`` with a
  crop of the image size pads nothing.

What remains is float32 summation order (gloo sums the two ranks' gradients, one process sums
the batch inside the convolution's reduction): differences of ~1e-8 after a few steps, so the test
allows 1e-5 on weights and a relative 1e-5 on losses; a genuine mismatch (a wrong shard, a missing
gradient average) shows up at 1e-3 or more.

Also checked: only rank 0 writes the checkpoint, train state and log lines; ``--resume`` under
torchrun continues where the first launch stopped; val metrics are all-reduced (each rank scores
every other image); the teacher cache is built once and read by both ranks. The NCCL variant runs
when two GPUs are present.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from edgekd.checkpoint import load_train_state
from edgekd.training.loop import train_state_path

ROOT = Path(__file__).resolve().parents[1]
# float32 on CPU; on CUDA the trainer runs AMP (float16 autocast), whose rounding is ~1e-3 relative.
TOL = {"cpu": {"weights": 1e-5, "loss": 1e-5}, "cuda": {"weights": 1e-2, "loss": 1e-2}}
COMMON = ["--epochs", "2", "--crop-size", "48x64", "--scale-range", "1,1", "--freeze-bn", "--lr", "0.05",
          "--eval-images", "3", "--no-progress", "--json"]


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None), env.pop("RANK", None)
    return env


def launch(nproc: int, args: list[str], cwd: Path, device: str = "cpu") -> subprocess.CompletedProcess:
    """``python -m edgekd ARGS`` in one process, or under ``torchrun --standalone --nproc_per_node N``."""
    per_rank = str(4 // nproc)
    cmd = [sys.executable, "-m", "edgekd", *args, "--batch-size", per_rank, "--device", device]
    if nproc > 1:
        cmd[1:3] = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), "-m", "edgekd"]
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


def history(out: Path) -> list[dict]:
    return json.loads(load_train_state(train_state_path(out))["history_json"])


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    return max((wa[k].double() - wb[k].double()).abs().max().item() for k in wa)


def step_ms(hist: list[dict], steps_per_epoch: int) -> float:
    """Mean training step of the epochs after the first (the first pays for warm-up)."""
    later = hist[1:] or hist
    return 1000 * sum(h["train_seconds"] for h in later) / (len(later) * steps_per_epoch)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    subprocess.run([sys.executable, "-m", "edgekd", "data", "synth", str(root / "ds"), "--num-train", "8",
                    "--num-val", "4", "--image-size", "48x64"], env=_env(), check=True, capture_output=True)
    return root / "ds"


@pytest.fixture(scope="module")
def teacher(data, tmp_path_factory) -> Path:
    from edgekd.training import TrainConfig, train_supervised

    out = tmp_path_factory.mktemp("ddp_teacher") / "teacher.safetensors"
    train_supervised(TrainConfig(arch="unet_tiny", data=str(data), out=str(out), epochs=1, batch_size=4,
                                 crop_size=(48, 64), val_images=1))
    return out


def compare(tmp_path: Path, args: list[str], label: str, device: str = "cpu") -> dict:
    """Run ARGS in 1 and 2 processes, in two launches each (epoch 1, then --resume to epoch 2)."""
    runs = {}
    for nproc in (1, 2):
        folder = tmp_path / f"p{nproc}"
        folder.mkdir()
        out = folder / "student.safetensors"
        first = launch(nproc, [*args, "--out", str(out), *_epochs(COMMON, 1)], folder, device)
        assert history(out)[-1]["epoch"] == 1
        second = launch(nproc, [*args, "--out", str(out), *COMMON, "--resume"], folder, device)
        runs[nproc] = (out, first, second, history(out))
    (one, _, _, h1), (two, first2, second2, h2) = runs[1], runs[2]
    assert [h["epoch"] for h in h2] == [1, 2], "the resumed torchrun launch continues at epoch 2"
    diff = max_weight_diff(one, two)
    curve1, curve2 = [h["train_loss"] for h in h1], [h["train_loss"] for h in h2]
    steps = 8 // 4
    print(f"\n[{label}] train_loss 1 proc {['%.6f' % v for v in curve1]}  2 procs {['%.6f' % v for v in curve2]}; "
          f"max |Δweight| {diff:.2e}; step {step_ms(h1, steps):.1f} ms (1 proc, batch 4) vs "
          f"{step_ms(h2, steps):.1f} ms (2 procs × batch 2)")
    tol = TOL[device]
    assert diff < tol["weights"]
    assert curve2 == pytest.approx(curve1, rel=tol["loss"])
    for key in ("val_miou", "val_pixel_accuracy", "val_boundary_f"):
        assert [h[key] for h in h2] == pytest.approx([h[key] for h in h1], abs=1e-9 if device == "cpu" else 1e-2), key
    assert all(h["val_images"] == 3 for h in h2)
    # Rank 0 alone wrote files and logged: one checkpoint + one train state, one line per epoch, one JSON.
    written = sorted(p.name for p in (tmp_path / "p2").iterdir() if p.is_file())
    assert written == ["student.safetensors", "student.train_state.pt"], written
    for launch_done, epoch in ((first2, 1), (second2, 2)):
        assert launch_done.stderr.count(f"epoch {epoch}/") == 1, launch_done.stderr[-2000:]
        json.loads(launch_done.stdout)  # exactly one JSON document: rank 1 printed nothing
    return {"one": one, "two": two}


def _epochs(args: list[str], n: int) -> list[str]:
    args = list(args)
    args[args.index("--epochs") + 1] = str(n)
    return args


def test_train_two_processes_match_one(data, tmp_path):
    out = compare(tmp_path, ["train", "--arch", "unet_tiny", "--data", str(data)], "train")
    _check_val_reduction(data, out["two"])


@pytest.mark.slow  # ~50 s: four torchrun/python launches; the train test above covers the launch itself
def test_distill_with_teacher_cache_two_processes_match_one(data, teacher, tmp_path):
    # A relative --cache-dir: each run folder (p1, p2) gets its own, so the torchrun launch builds one
    # itself (local rank 0 builds, rank 1 waits on the barrier and opens it: it cannot build).
    compare(tmp_path, ["distill", "--student", "unet_tiny", "--teacher", str(teacher), "--data", str(data),
                       "--loss", "ce", "--loss", "kd", "--cache", "on", "--cache-dir", "cache"], "distill+cache")
    caches = list((tmp_path / "p2" / "cache").iterdir())
    assert len(caches) == 1, caches  # both launches' ranks opened one cache
    index = json.loads((caches[0] / "index.json").read_text())
    assert index["complete"] and (caches[0] / "logits.f16").stat().st_size == index["bytes"]
    assert not [p for p in caches[0].iterdir() if ".tmp" in p.name]


@pytest.mark.slow  # ~50 s, as above
def test_distill_live_feature_teacher_two_processes_match_one(data, teacher, tmp_path):
    compare(tmp_path, ["distill", "--student", "unet_tiny", "--teacher", str(teacher), "--data", str(data),
                       "--loss", "ce", "--loss", "kd", "--loss", "fitnet@stage3:0.5", "--cache", "off"], "distill+fitnet")


def _check_val_reduction(data: Path, checkpoint: Path) -> None:
    """The torchrun run's val metrics are those of all 3 images, not of rank 0's share (images 0 and 2)."""
    from edgekd.checkpoint import load_checkpoint
    from edgekd.data import build_eval_transform, open_dataset
    from edgekd.evaluate import evaluate_model

    model, meta = load_checkpoint(checkpoint)
    val = open_dataset(data, "val", transform=build_eval_transform(None))
    full = evaluate_model(model, meta.normalization, val, max_images=3)
    rank0 = evaluate_model(model, meta.normalization, val, max_images=3, shard=(0, 2))
    logged = history(checkpoint)[-1]
    assert logged["val_pixel_accuracy"] == pytest.approx(full["pixel_accuracy"], abs=1e-9)
    assert rank0["pixel_accuracy"] != pytest.approx(full["pixel_accuracy"], abs=1e-9), "test cannot tell a reduced metric from rank 0's"


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs 2 CUDA GPUs; this machine has "
                    f"{torch.cuda.device_count()} (CPU-only torch {torch.__version__})")
def test_train_two_gpus_nccl_match_one(data, tmp_path):
    from edgekd.training.runtime import backend_for

    assert backend_for(torch.device("cuda", 0)) == "nccl"
    compare(tmp_path, ["train", "--arch", "unet_tiny", "--data", str(data)], "train-nccl", device="cuda")


def test_teacher_cache_half_written_is_never_read(synthetic_root, tiny_teacher, tmp_path):
    """index.json is the completeness marker: an array of the wrong size is rebuilt, or refused by a waiting rank."""
    from edgekd.checkpoint import load_checkpoint, sha256_file
    from edgekd.data import build_eval_transform, open_dataset
    from edgekd.errors import EdgekdError
    from edgekd.training.teacher_cache import build_or_open_cache

    model, _ = load_checkpoint(tiny_teacher)
    ds = open_dataset(synthetic_root, "train", transform=build_eval_transform(None))
    kwargs = dict(teacher_sha=sha256_file(tiny_teacher), cache_dir=tmp_path)
    built = build_or_open_cache(model, model.normalization, ds, **kwargs)
    data_file = built.path / "logits.f16"
    full = data_file.read_bytes()
    assert json.loads((built.path / "index.json").read_text())["bytes"] == len(full)
    data_file.write_bytes(full[: len(full) // 2])  # a writer that died mid-file (without the rename)
    with pytest.raises(EdgekdError, match="missing or incomplete"):
        build_or_open_cache(model, model.normalization, ds, build=False, **kwargs)
    rebuilt = build_or_open_cache(model, model.normalization, ds, **kwargs)
    assert rebuilt.build_seconds > 0 and data_file.read_bytes() == full
    assert build_or_open_cache(model, model.normalization, ds, build=False, **kwargs).build_seconds == 0.0
