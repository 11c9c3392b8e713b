"""`edgekd export` through edgekd.cli.main: artifacts, the summary, loud parity warnings, error exits."""
from __future__ import annotations

import pytest

from edgekd.cli import main
from edgekd.export import read_manifest
from test_export_support import tiny_ckpt  # noqa: F401  (fixture)


def test_cli_exports_and_prints_parity(tiny_ckpt, synthetic_root, tmp_path, capsys):
    code = main(["export", str(tiny_ckpt), "--backend", "torch,onnxruntime", "--precision", "fp32", "--out", str(tmp_path),
                 "--data", str(synthetic_root), "--parity-images", "2", "--exporter", "dynamo"])
    out = capsys.readouterr().out
    assert code == 0
    assert "onnxruntime-fp32" in out and "100.00%" in out and "PARITY WARNING" not in out
    assert read_manifest(tmp_path / "tiny" / "onnxruntime-fp32")["onnx"]["opset"] == 20


def test_cli_flags_low_agreement_loudly(tiny_ckpt, synthetic_root, tmp_path, capsys):
    code = main(["export", str(tiny_ckpt), "--backend", "onnxruntime", "--precision", "int8", "--out", str(tmp_path),
                 "--calib", str(synthetic_root), "--calib-images", "12", "--calib-method", "minmax", "--parity-images", "2",
                 "--parity-threshold", "1.01", "--max-accuracy-drop", "50"])  # the flag under test is parity's
    out = capsys.readouterr().out
    assert code == 0 and "PARITY WARNING onnxruntime-int8" in out
    manifest = read_manifest(tmp_path / "tiny" / "onnxruntime-int8")
    assert manifest["calibration"]["method"] == "minmax" and manifest["parity"]["warning"]


@pytest.mark.parametrize("argv, message", [
    (["--backend", "openvno"], "unknown backend 'openvno' (did you mean 'openvino'?)"),
    (["--backend", "onnxruntime", "--precision", "int8"], "INT8 needs real calibration images"),
    (["--backend", "torch", "--input-size", "64by96"], "input size '64by96' must be HxW"),
    (["--backend", "torch", "--coreml-weights", "linear8"], "'coreml_weights' does nothing"),
])
def test_cli_errors_are_one_line_with_exit_code_2(tiny_ckpt, tmp_path, capsys, argv, message):
    code = main(["export", str(tiny_ckpt), "--out", str(tmp_path), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1 and err.startswith("edgekd export: error:")
    assert list(tmp_path.iterdir()) == []


def test_backend_export_flags_come_from_the_backends_declarations():
    # the CLI builds one flag per option a backend declares (Backend.export_options), typed as declared
    import argparse

    from edgekd.backends.registry import get_backend, list_backends
    from edgekd.cli import export as cli_export

    p = argparse.ArgumentParser()
    cli_export.add_arguments(p)
    flags = {a.dest for a in p._actions}
    for name in list_backends():
        for key in get_backend(name).export_options:
            assert key in flags, (name, key)
    args = p.parse_args(["ckpt", "--backend", "tensorrt,coreml", "--out", "o", "--trt-workspace-mb", "512",
                         "--coreml-bake-normalization", "--litert-int8", "dynamic_range"])
    assert cli_export._options(args) == {"trt_workspace_mb": 512, "coreml_bake_normalization": True,
                                         "litert_int8": "dynamic_range"}
