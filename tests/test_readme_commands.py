"""Every ``edgekd`` command line of README.md runs as written (issue: a newcomer's first hour).

The commands are taken from the README's ```bash blocks, in order, and run in one scratch folder:
``edgekd data synth OUT`` makes the data the later lines call ``DATA_DIR``, ``train`` makes the
``teacher.safetensors`` that ``distill`` uses, and so on. Two kinds of change only:

* placeholders become real paths (``DATA_DIR``, ``CAMVID``, ``cgnet.pth``, ``chain.yaml``);
* size-limiting flags are appended (argparse lets a later flag win), so each command runs on a
  tiny synthetic dataset in seconds: fewer images, one short epoch, a small input, short bench cells.

A backend whose runtime is not installed here (TensorRT needs an NVIDIA GPU) is dropped from the
export line with the reason printed; the CamVid line runs only when the real data is beside the
checkout. Anything else that fails fails the test.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CAMVID, MODELS

README = Path(__file__).resolve().parents[1] / "README.md"
SIZE = "64x96"

# Appended to each subcommand so it runs in seconds on the tiny data (later flags win).
TINY = {
    ("data", "synth"): ["--num-train", "8", "--num-val", "4", "--image-size", SIZE],
    ("train",): ["--epochs", "1", "--batch-size", "2", "--crop-size", "48x64", "--max-steps-per-epoch", "2",
                 "--eval-images", "2", "--no-progress"],
    ("distill",): ["--epochs", "1", "--batch-size", "2", "--crop-size", "48x64", "--max-steps-per-epoch", "2",
                   "--eval-images", "2", "--no-progress"],
    ("eval",): ["--eval-images", "2"],
    ("export",): ["--input-size", SIZE, "--parity-images", "2"],
    ("bench",): ["--duration", "0.3", "--eval-images", "2", "--min-iters", "5"],
}
RUNTIME_MODULE = {"tensorrt": "tensorrt", "coreml": "coremltools", "openvino": "openvino"}


def readme_commands(text: str) -> list[str]:
    """The ``edgekd ...`` lines of the README's bash blocks, continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("edgekd "):
                commands.append(line)
    return commands


def test_readme_has_the_loop_commands():
    commands = readme_commands(README.read_text())
    verbs = {shlex.split(c)[1] for c in commands}
    assert {"train", "distill", "export", "bench", "compare", "report", "doctor", "estimate", "eval"} <= verbs


def _drop_unavailable_backends(argv: list[str]) -> tuple[list[str], list[str]]:
    i = argv.index("--backend") + 1
    kept, dropped = [], []
    for item in argv[i].split(","):
        module = RUNTIME_MODULE.get(item.partition(":")[0])
        (dropped if module and importlib.util.find_spec(module) is None else kept).append(item)
    return argv[:i] + [",".join(kept)] + argv[i + 1:], dropped


def _prepare(command: str, work: Path) -> list[str] | str:
    """The argv to run, or a skip reason."""
    argv = shlex.split(command)[1:]
    if "CAMVID" in argv:
        if not (CAMVID.is_dir() and (MODELS / "cgnet_m3n21_camvid_trainval.pth").is_file()):
            return "needs the real CamVid data and CGNet weights beside the checkout"
        argv = [str(CAMVID) if a == "CAMVID" else str(MODELS / "cgnet_m3n21_camvid_trainval.pth") if a == "cgnet.pth"
                else a for a in argv]
    argv = [str(work / "data") if a == "DATA_DIR" else a for a in argv]
    if "--recipe" in argv:
        (work / "chain.yaml").write_text(
            "common: {data: %s, epochs: 1, batch_size: 2, crop_size: [48, 64], max_steps_per_epoch: 2, eval_images: 2}\n"
            "stages:\n  - {name: s, student: unet_tiny, teachers: [teacher.safetensors], out: chain-student.safetensors}\n"
            % (work / "data"))
        return argv
    if argv[0] == "export":
        argv, dropped = _drop_unavailable_backends(argv)
        if dropped:
            print(f"export: dropped {', '.join(dropped)} (runtime not installed here)")
    for prefix, extra in TINY.items():
        if tuple(argv[:len(prefix)]) == prefix:
            argv = argv + extra
    return argv


def test_every_readme_command_runs_as_written(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ran, skipped = [], []
    for command in readme_commands(README.read_text()):
        argv = _prepare(command, tmp_path)
        if isinstance(argv, str):
            skipped.append((command, argv))
            continue
        done = subprocess.run([sys.executable, "-m", "edgekd", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"README command failed: {command}\n$ edgekd {' '.join(argv)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        ran.append(command)
    print(f"ran {len(ran)} README commands; skipped {len(skipped)}: " + "; ".join(f"{c!r} ({r})" for c, r in skipped))
    assert len(ran) >= 12
