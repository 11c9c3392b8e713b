"""The study's committed student checkpoints: every file is listed with its true sha256, documented,
pickle-free and small, so `edgekd eval` on a fresh clone re-checks exactly what the README reports."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgekd.checkpoint import read_meta

FOLDER = Path(__file__).resolve().parents[1] / "bench_results" / "camvid" / "checkpoints"
FILES = sorted(FOLDER.glob("*.safetensors"))
MAX_BYTES = 5 * 1024 * 1024  # the limit per committed checkpoint


def _sums() -> dict[str, str]:
    pairs = (line.split() for line in (FOLDER / "SHA256SUMS").read_text().splitlines() if line.strip())
    return {name: digest for digest, name in pairs}


def test_every_committed_checkpoint_is_in_sha256sums_and_nothing_else_is():
    assert FILES, f"no checkpoints under {FOLDER}"
    assert sorted(_sums()) == [f.name for f in FILES]


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_committed_checkpoint_matches_its_sum_is_small_and_documented(path: Path):
    assert hashlib.sha256(path.read_bytes()).hexdigest() == _sums()[path.name]
    assert path.stat().st_size < MAX_BYTES
    assert f"| {path.name} |" in (FOLDER / "README.md").read_text(), "every checkpoint has a row in the README"
    meta = read_meta(path)  # safetensors metadata only: no unpickling
    assert meta.trained_with.get("epochs_completed") == meta.trained_with.get("epochs")
