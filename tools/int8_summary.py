"""Markdown table of INT8 exports: FP32 vs INT8 mIoU, drop, share of FP32, method, layers in float.

Reads the manifests of artifact folders written by `edgekd export` (no runtime is loaded), e.g.

    .venv/bin/python tools/int8_summary.py /work/runs/int8/default/*/ /work/runs/int8/ptq-minmax/*/

The FP32 figure is the gate's (the same runtime's FP32 graph on the gate's images); when the gate
was off or absent, the parity block's (PyTorch FP32 on the parity images).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def row(folder: Path, run: str) -> str | None:
    manifest = json.loads((folder / "manifest.json").read_text())
    if manifest["precision"] != "int8":
        return None
    gate, parity, quant = manifest.get("accuracy_gate") or {}, manifest.get("parity") or {}, manifest.get("quantization") or {}
    if gate.get("fp32_miou") is not None:
        fp32, int8, images, ref = gate["fp32_miou"], gate["int8_miou"], gate["validation_images"], "same runtime FP32"
    elif parity.get("miou_backend") is not None:
        fp32, int8 = 100 * parity["miou_reference"], 100 * parity["miou_backend"]
        images, ref = parity["data"]["num_images"], "PyTorch FP32"
    else:
        return None
    floats = len(quant.get("float_layers") or [])
    bn = len(quant.get("batchnorm_in_float") or [])
    agree = parity.get("argmax_agreement")
    return (f"| {folder.parent.name} | {manifest['backend']} | {run} | {quant.get('method', '?')} | {fp32:.2f} | {int8:.2f} | "
            f"{int8 - fp32:+.2f} | {100 * int8 / fp32:.1f}% | {floats}" + (f" (+{bn} BN)" if bn else "") +
            f" | {'-' if agree is None else f'{100 * agree:.1f}%'} | {images} ({ref}) |")


def main(argv: list[str]) -> int:
    print("| model | runtime | run | method | FP32 mIoU | INT8 mIoU | Δ points | INT8/FP32 | layers in float | "
          "argmax agreement vs PyTorch | images (reference) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for arg in argv:
        folder = Path(arg)
        if (folder / "manifest.json").is_file():
            line = row(folder, folder.parent.parent.name)
            if line:
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
