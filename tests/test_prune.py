"""edgekd prune: plan replay round trip, real MAC reduction, bad input, recovery distillation from the parent."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from edgekd.errors import EdgekdError
from edgekd.models import create_model
from edgekd.models.complexity import count_macs, count_params
from edgekd.prune.api import PruneTarget, prune_checkpoint
from edgekd.prune.channels import PruneError, build_graph

from conftest import MODELS, SMALL_RUN, require_shared

SIZE = (64, 96)


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Distinct BatchNorm statistics and scales, so channel importances differ as in a trained network."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.1)


@pytest.fixture(scope="module")
def tiny_cgnet(synthetic_root, tmp_path_factory):
    """A CGNet with short stages (M=2, N=4) for the synthetic dataset's classes, saved as an edgekd checkpoint."""
    from edgekd.data import open_dataset

    info = open_dataset(synthetic_root, "train").info
    model = create_model("cgnet_m3n21", num_classes=info.num_classes, stage2_blocks=2, stage3_blocks=4)
    _randomize_bn(model)
    norm = model.normalization
    meta = CheckpointMeta(arch="cgnet_m3n21", num_classes=info.num_classes, class_names=list(info.class_names),
                          ignore_index=info.ignore_index, input_size=list(SIZE), mean=list(norm.mean), std=list(norm.std),
                          arch_kwargs={"stage2_blocks": 2, "stage3_blocks": 4})
    return save_checkpoint(tmp_path_factory.mktemp("cgnet") / "parent.safetensors", model.eval(), meta)


@pytest.fixture(scope="module")
def pruned_half(tiny_cgnet, tmp_path_factory):
    out = tmp_path_factory.mktemp("pruned") / "half.safetensors"
    return prune_checkpoint(tiny_cgnet, out, PruneTarget("macs", 0.5), drop_blocks_n=1)


def test_macs_params_and_file_size_really_shrink(tiny_cgnet, pruned_half):
    parent, _ = load_checkpoint(tiny_cgnet)
    pruned, meta = load_checkpoint(pruned_half.out)
    assert count_macs(pruned, SIZE) <= 0.5 * count_macs(parent, SIZE)
    assert count_params(pruned) < count_params(parent)
    assert pruned_half.out.stat().st_size < tiny_cgnet.stat().st_size
    assert pruned_half.after["macs"] == count_macs(pruned, SIZE) and pruned_half.after["macs"] < pruned_half.before["macs"]
    # the stage-3 residual stream (concatenated with itself) is pruned in coupled pairs; groups left whole say why
    assert pruned.level3_0.reduce.conv.out_channels < 128 and pruned.level3_0.reduce.conv.out_channels % 2 == 0
    assert all(isinstance(why, str) and why for why in meta.structure["skipped"].values())
    assert len(pruned.level3) == 2 and meta.structure["dropped_blocks"] == {"level3": [2]}
    assert meta.structure["torch_pruning"].startswith("1.6") and pruned.classifier[0].conv.out_channels == meta.num_classes
    assert pruned.feature_channels["stage3"] == pruned.bn_prelu_3.bn.num_features < 256


def test_round_trip_save_load_export_gives_the_same_logits(pruned_half, tmp_path):
    import onnxruntime as ort

    from edgekd.backends.onnx_export import export_onnx

    loaded, _ = load_checkpoint(pruned_half.out)
    x = torch.rand(1, 3, *SIZE) * 255
    with torch.no_grad():
        expected = pruned_half.model(x).numpy()
        np.testing.assert_array_equal(loaded(x).numpy(), expected)
    path = tmp_path / "pruned.onnx"
    export_onnx(loaded, SIZE, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_export_records_the_pruned_macs_and_bench_reads_them(tiny_cgnet, pruned_half, tmp_path):
    from edgekd.bench.plan import _macs
    from edgekd.export import export_checkpoint

    export_checkpoint(pruned_half.out, backends=["onnxruntime"], precisions=["fp32"], out_dir=tmp_path / "a", parity_images=0)
    manifest = json.loads(next((tmp_path / "a").rglob("manifest.json")).read_text())
    parent_macs = count_macs(load_checkpoint(tiny_cgnet)[0], SIZE)
    assert manifest["macs"] == count_macs(load_checkpoint(pruned_half.out)[0], SIZE) < 0.7 * parent_macs
    assert manifest["macs_input_size"] == list(SIZE)
    assert _macs(manifest, SIZE) == {"macs": manifest["macs"], "macs_source": "manifest"}


def test_a_multi_size_export_records_each_sizes_own_macs_and_bench_keeps_pruned_and_parent_apart(tiny_cgnet, pruned_half, tmp_path):
    """The resolution curve in one export call: every size's manifest counts that size (the study's
    reference rows once all said the first size's MACs), and bench does not hand the parent's count to
    its pruned child at the same shape."""
    from edgekd.bench.plan import _macs
    from edgekd.export import export_checkpoint

    small = (SIZE[0] // 2, SIZE[1] // 2)
    sizes = f"{SIZE[0]}x{SIZE[1]},{small[0]}x{small[1]}"
    for name, ckpt in (("parent", tiny_cgnet), ("pruned", pruned_half.out)):
        export_checkpoint(ckpt, backends=["onnxruntime"], precisions=["fp32"], out_dir=tmp_path / name, parity_images=0,
                          input_size=sizes)
    manifests = {(p.parent.parent.parent.name, tuple(json.loads(p.read_text())["macs_input_size"])): json.loads(p.read_text())
                 for p in tmp_path.rglob("manifest.json")}
    for name, ckpt in (("parent", tiny_cgnet), ("pruned", pruned_half.out)):
        model = load_checkpoint(ckpt)[0]
        for hw in (SIZE, small):
            assert manifests[(name, hw)]["macs"] == count_macs(model, hw)
            assert _macs(manifests[(name, hw)], hw)["macs"] == count_macs(model, hw)
    assert manifests[("pruned", small)]["macs"] < manifests[("parent", small)]["macs"] < manifests[("parent", SIZE)]["macs"]


def _rewrite_structure(src, dst, edit) -> None:
    from safetensors.torch import load_file, save_file

    meta = read_meta(src)
    edit(meta.structure)
    from dataclasses import asdict

    save_file(load_file(str(src)), str(dst), metadata={"edgekd": json.dumps(asdict(meta))})


def test_a_plan_that_does_not_match_the_weights_is_refused(pruned_half, tmp_path):
    bad = tmp_path / "bad.safetensors"

    def forget_the_narrowed_layers(structure):
        structure["layers"] = {}  # the plan now says "nothing narrowed"; the weights are narrowed

    _rewrite_structure(pruned_half.out, bad, forget_the_narrowed_layers)
    with pytest.raises(CheckpointError, match=r"pruning plan replayed on cgnet_m3n21 does not match its weights \(\d+ shape mismatches"):
        load_checkpoint(bad)


def test_a_plan_naming_a_layer_the_architecture_lacks_is_refused(pruned_half, tmp_path):
    bad = tmp_path / "bad.safetensors"
    _rewrite_structure(pruned_half.out, bad, lambda s: s["layers"].update({"nowhere.conv": {"kind": "conv"}}))
    with pytest.raises(EdgekdError, match=r"layer 'nowhere.conv', which CGNet does not have"):
        load_checkpoint(bad)


def test_an_unreachable_target_says_the_best_ratio_and_writes_nothing(tiny_cgnet, tmp_path):
    out = tmp_path / "x.safetensors"
    with pytest.raises(PruneError, match=r"cannot be reached: the best ratio is 0\.\d+"):
        prune_checkpoint(tiny_cgnet, out, PruneTarget("macs", 0.001))
    assert not out.exists() and not list(tmp_path.iterdir())


def test_existing_out_needs_force_and_bad_targets_are_refused(tiny_cgnet, pruned_half, tmp_path):
    with pytest.raises(PruneError, match="exists; pass --force"):
        prune_checkpoint(tiny_cgnet, pruned_half.out, PruneTarget("macs", 0.5))
    with pytest.raises(PruneError, match="strictly between 0 and 1"):
        prune_checkpoint(tiny_cgnet, tmp_path / "x.safetensors", PruneTarget("params", 1.5))
    with pytest.raises(PruneError, match="--target-latency-ms is not implemented yet.*--target-macs"):
        prune_checkpoint(tiny_cgnet, tmp_path / "x.safetensors", PruneTarget("latency", 10.0, "host"))
    with pytest.raises(PruneError, match="already pruned"):
        prune_checkpoint(pruned_half.out, tmp_path / "x.safetensors", PruneTarget("macs", 0.5))
    with pytest.raises(PruneError, match="--drop-blocks 9: level3 of CGNet has 3 blocks"):
        prune_checkpoint(tiny_cgnet, tmp_path / "x.safetensors", PruneTarget("macs", 0.5), drop_blocks_n=9)
    assert not (tmp_path / "x.safetensors").exists()


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)  # expects 4 channels, gets 8: the forward fails here

    def forward(self, x):
        return self.head(self.stem(x))


def test_a_model_the_pruner_cannot_trace_names_the_layer():
    with pytest.raises(PruneError, match=r"cannot trace _Untraceable: it failed in layer 'head'"):
        build_graph(_Untraceable(), torch.zeros(1, 3, 16, 16))


def test_cli_prints_before_and_after(tiny_cgnet, tmp_path, capsys):
    from edgekd.cli import main

    out = tmp_path / "p.safetensors"
    assert main(["prune", str(tiny_cgnet), "--target-params", "0.6", "--importance", "bn", "--out", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ratios"]["params"] <= 0.6 and doc["after"]["macs"] < doc["before"]["macs"]
    assert main(["prune", str(tiny_cgnet), "--target-params", "0.6", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err


def test_recovery_distillation_from_the_parent_with_feature_adapters(synthetic_root, tiny_cgnet, pruned_half, tmp_path):
    from edgekd.training.distill import DistillConfig, distill

    out = tmp_path / "recovered.safetensors"
    cfg = DistillConfig(arch=None, data=str(synthetic_root), out=str(out), teachers=[str(tiny_cgnet)], init=str(pruned_half.out),
                        losses=["ce", "kd(tau=1):1", "fitnet@stage3:0.5"], **{**SMALL_RUN, "max_steps_per_epoch": 1})
    distill(cfg)
    recovered, meta = load_checkpoint(out)
    assert meta.structure["layers"] == pruned_half.structure["layers"]
    assert count_params(recovered) == pruned_half.after["params"]


@pytest.mark.slow
def test_real_cgnet_prunes_to_half_its_macs(tmp_path):
    path = require_shared(MODELS / "cgnet_m3n21_camvid_trainval.pth")
    result = prune_checkpoint(path, tmp_path / "cgnet_half.safetensors", PruneTarget("macs", 0.5), arch="cgnet_m3n21")
    assert result.after["macs"] <= 0.52 * result.before["macs"]
    model, _ = load_checkpoint(result.out)
    assert count_macs(model) == result.after["macs"]
