"""Several input sizes in one call (the resolution curve): parsing, export, eval, bench discovery."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekd.errors import EdgekdError
from edgekd.export import export_checkpoint, load_artifact, read_manifest
from edgekd.input_sizes import parse_input_sizes
from test_export import _save, build_skip_concat  # noqa: F401  (the model is reached by its import path)
from test_export_support import tiny_ckpt  # noqa: F401  (fixture)


def test_parse_lists_pairs_and_spellings():
    assert parse_input_sizes("360x480, 270X360,240×320") == [(360, 480), (270, 360), (240, 320)]
    assert parse_input_sizes((64, 96)) == [(64, 96)]
    assert parse_input_sizes(["64x96", (32, 48)]) == [(64, 96), (32, 48)]
    assert parse_input_sizes(None) == []


@pytest.mark.parametrize("value, message", [
    ("360x480,big", r"input size 'big' must be HxW in pixels, height first \(in '360x480,big'\)"),
    ("360x480,,240x320", "has an empty entry"),
    ("360x480,240x320,360x480", "input size 360x480 appears twice in '360x480,240x320,360x480'; give each size once"),
    ("0x480", "must be positive"),
    ("360*480", "input size '360\\*480' must be HxW"),
    ([], "no input size given"),
])
def test_bad_size_lists_are_refused_with_the_value(value, message):
    with pytest.raises(EdgekdError, match=message):
        parse_input_sizes(value)


def test_export_makes_one_artifact_per_size_with_its_shape_and_parity(tiny_ckpt, synthetic_root, tmp_path):
    paths = export_checkpoint(tiny_ckpt, backends="torch,onnxruntime", precisions="fp32", out_dir=tmp_path,
                              input_size="64x96,32x48,36x52", data_dir=synthetic_root, parity_images=2)
    names = [p.name for p in paths]
    assert names == ["torch-fp32-64x96", "onnxruntime-fp32-64x96", "torch-fp32-32x48", "onnxruntime-fp32-32x48",
                     "torch-fp32-36x52", "onnxruntime-fp32-36x52"]
    for path in paths:
        m = read_manifest(path)
        h, w = (int(v) for v in path.name.rsplit("-", 1)[1].split("x"))
        assert m["input_shape"] == [1, 3, h, w] and m["output_shape"][2:] == [h, w] and m["input_size"] == [h, w]
        assert m["input_size_sweep"] == ["64x96", "32x48", "36x52"]
        assert m["parity"]["status"] == "ok" and m["parity"]["argmax_agreement"] > 0.99
        if m["backend"] == "onnxruntime":
            out = load_artifact(path).run(np.zeros((1, 3, h, w), np.float32))
            assert out.shape == (1, m["num_classes"], h, w)
    # 36x52 is off the stride-8 grid: the model resizes internally, so it is exported with the note
    assert "not a multiple of the output stride 8" in read_manifest(paths[-1])["input_size_note"]
    assert "input_size_note" not in read_manifest(paths[0])
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")], "no temporary folder left"


def test_a_single_size_keeps_the_plain_folder_name(tiny_ckpt, tmp_path):
    (path,) = export_checkpoint(tiny_ckpt, backends="torch", precisions="fp32", out_dir=tmp_path, input_size="32x48")
    assert path.name == "torch-fp32" and read_manifest(path)["input_size"] == [32, 48]
    assert "input_size_sweep" not in read_manifest(path)


def test_a_size_the_model_cannot_take_fails_the_whole_call_before_writing(tmp_path):
    ckpt = _save(tmp_path, "test_export:build_skip_concat", build_skip_concat())
    with pytest.raises(EdgekdError, match="input size 18x30 is not divisible by .* output stride 4 .*use --input-size 20x32"):
        export_checkpoint(ckpt, backends="torch", precisions="fp32", out_dir=tmp_path / "out", input_size="16x16,18x30")
    assert not (tmp_path / "out").exists(), "nothing written: the bad size is found before the first artifact"


def test_existing_size_folder_is_refused_before_any_export(tiny_ckpt, tmp_path):
    export_checkpoint(tiny_ckpt, backends="torch", precisions="fp32", out_dir=tmp_path, input_size="64x96,32x48")
    with pytest.raises(EdgekdError, match="torch-fp32-32x48 exists; pass --force"):
        export_checkpoint(tiny_ckpt, backends="torch", precisions="fp32", out_dir=tmp_path, input_size="16x24,32x48")
    assert not (tmp_path / "tiny" / "torch-fp32-16x24").exists()


def test_cli_export_several_sizes_and_bad_list(tiny_ckpt, tmp_path, capsys):
    from edgekd.cli import main

    assert main(["export", str(tiny_ckpt), "--backend", "torch", "--input-size", "64x96,32x48", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == ["torch-fp32-32x48", "torch-fp32-64x96"]
    capsys.readouterr()
    assert main(["export", str(tiny_ckpt), "--backend", "torch", "--input-size", "64x96,64x96", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "64x96 appears twice" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_eval_prints_one_mIoU_line_per_size(tiny_ckpt, synthetic_root, capsys):
    from edgekd.cli import main

    assert main(["eval", str(tiny_ckpt), "--data", str(synthetic_root), "--eval-images", "2",
                 "--input-size", "64x96,32x48"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "mIoU" in line]
    assert [line.split(":")[0] for line in lines] == ["64x96", "32x48"]
    assert main(["eval", str(tiny_ckpt), "--data", str(synthetic_root), "--eval-images", "2", "--json",
                 "--input-size", "64x96,32x48"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["input_size"] for r in results] == [[64, 96], [32, 48]]
    assert all(0 <= r["miou"] <= 1 and r["images"] == 2 for r in results)


def test_eval_scores_at_label_size_whatever_the_input_size(tiny_ckpt, synthetic_root):
    """The model runs at the input size; its logits are upsampled to the label size for scoring."""
    import torch

    from edgekd.checkpoint import load_checkpoint
    from edgekd.data import build_eval_transform, open_dataset
    from edgekd.evaluate import predict

    model, meta = load_checkpoint(tiny_ckpt)
    image, mask = open_dataset(synthetic_root, "val", transform=build_eval_transform(None))[0]
    seen = []
    model.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    pred = predict(model, meta.normalization, image.unsqueeze(0), (32, 48))
    assert seen == [(32, 48)] and tuple(pred.shape[-2:]) == tuple(mask.shape) and pred.dtype == torch.int64


def test_eval_refuses_a_bad_size_list_in_one_line(tmp_path, synthetic_root, capsys):
    from edgekd.cli import main

    ckpt = _save(tmp_path, "test_export:build_skip_concat", build_skip_concat())
    assert main(["eval", str(ckpt), "--data", str(synthetic_root), "--input-size", "16x16,18x30"]) == 2
    err = capsys.readouterr().err.strip()
    assert "18x30 is not divisible" in err and "20x32" in err and len(err.splitlines()) == 1
    assert main(["eval", str(ckpt), "--data", str(synthetic_root), "--input-size", "16x16,16x16"]) == 2
    assert "appears twice" in capsys.readouterr().err


@pytest.fixture(scope="module")
def two_size_artifacts(tmp_path_factory) -> list[Path]:
    """A tiny zoo student exported with torch + ONNX Runtime at 32x32 and 48x64 in one call."""
    from test_bench_run import export_tiny  # noqa: F401  (makes the checkpoint)

    root = tmp_path_factory.mktemp("sizes")
    export_tiny(root, "torch")  # writes root/tiny_student.safetensors (and a 32x32 torch artifact, replaced below)
    return export_checkpoint(root / "tiny_student.safetensors", backends="torch,onnxruntime", precisions="fp32",
                             out_dir=root / "sweep", input_size="32x32,48x64", parity_images=0)


def test_bench_cells_of_one_checkpoint_at_two_sizes_are_distinct(two_size_artifacts, synthetic_root, tmp_path):
    """Each cell runs at its artifact's size (accuracy at label size, e2e resized to it), Δ FP32 against the same size."""
    from edgekd.bench.runner import BenchOptions, run_bench
    from edgekd.results.store import read_records
    from test_bench_run import FAST, host_profile

    ort = [p for p in two_size_artifacts if p.name.startswith("onnxruntime")]
    opts = BenchOptions(**FAST, data=synthetic_root, accuracy_images=2)
    summary = run_bench(host_profile(), ort, opts, tmp_path)
    rows = {tuple(r["input_size"]): r for r in read_records(summary.path)[0]}
    assert set(rows) == {(32, 32), (48, 64)} and all(r["status"] == "ok" for r in rows.values())
    assert rows[(32, 32)]["candidate"]["label"] == "tiny_student/onnxruntime-fp32@32x32"
    assert rows[(48, 64)]["cell_key"] != rows[(32, 32)]["cell_key"]
    for hw, row in rows.items():
        assert row["e2e"]["input_hw"] == list(hw)
        ref = row["accuracy"]["fp32_reference"]
        assert ref["artifact"].endswith(f"torch-fp32-{hw[0]}x{hw[1]}") and abs(row["accuracy"]["delta_miou_vs_fp32"]) < 0.02
    cache = json.loads(summary.path.with_suffix(".reference.json").read_text())
    assert sorted(k.split("@")[1] for k in cache) == ["32x32", "48x64"]


def test_bench_input_size_filter(two_size_artifacts, tmp_path, capsys):
    from edgekd.bench.plan import discover_artifacts, select_sizes
    from edgekd.cli import main

    root = two_size_artifacts[0].parent
    kept = select_sizes(discover_artifacts([root]), [(48, 64)])
    assert sorted(p.name for p in kept) == ["onnxruntime-fp32-48x64", "torch-fp32-48x64"]
    assert main(["bench", "--device", "host", str(root), "--input-size", "48x64,24x24", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no artifact at input size 24x24" in err and "32x32, 48x64" in err
    assert not list(tmp_path.iterdir())
