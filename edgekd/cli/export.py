"""`edgekd export`: a checkpoint → one artifact folder per (backend, precision, input size), with parity."""
from __future__ import annotations

import argparse

from edgekd.backends.registry import backends_where, list_backends
from edgekd.cli._common import add_renamed_argument

NAME = "export"
HELP = f"Export a checkpoint for {', '.join(list_backends())} (TensorRT: a recipe), with parity against FP32."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", help="edgekd .safetensors checkpoint, or a third-party .pt/.pth state dict with --arch")
    p.add_argument("--list-precisions", action="store_true", help="print the precisions each backend exports (and whether it is installed) and exit")
    p.add_argument("--backend", default=None,
                   help=f"comma-separated: {', '.join(list_backends())}; NAME:PRECISION pins one pair")
    p.add_argument("--precision", default="fp32", help="comma-separated: fp32, fp16, int8 (default fp32)")
    p.add_argument("--out", default=None, help="output root (required); artifacts go to OUT/<checkpoint-stem>/<backend>-<precision>/ "
                   "(with several --input-size: <backend>-<precision>-<H>x<W>/)")
    p.add_argument("--calib", default=None, help="dataset folder with real images for INT8 calibration (required for int8)")
    add_renamed_argument(p, "--calib-images", "--calib-size", type=int, default=100, metavar="N",
                         help="calibration images (default 100)")
    p.add_argument("--calib-split", default="train", help="split to calibrate on (default train)")
    p.add_argument("--calib-method", default="auto",
                   help="auto (default: minmax, percentile and entropy measured, the best kept) | minmax | percentile | entropy (ONNX Runtime INT8)")
    p.add_argument("--data", default=None, help="labelled dataset for parity (default: the --calib folder)")
    p.add_argument("--data-split", default="val", help="split for parity (default val)")
    p.add_argument("--parity-images", type=int, default=100,
                   help="validation images for parity and the INT8 accuracy gate (default 100: a 1-point budget needs them; 0 skips)")
    p.add_argument("--parity-threshold", type=float, default=0.98, help="argmax agreement below this is flagged (default 0.98)")
    p.add_argument("--input-size", default=None,
                   help="HxW, or several comma-separated (360x480,240x320: one artifact per size, the resolution curve); "
                        "default: the checkpoint's input size")
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch dimension (ONNX, OpenVINO, TensorRT profile)")
    p.add_argument("--arch", default=None, help="architecture of a third-party state dict (zoo name or package.module:builder)")
    p.add_argument("--num-classes", type=int, default=None, help="class count of a third-party state dict (default: inferred)")
    p.add_argument("--force", action="store_true", help="replace existing artifact folders")
    p.add_argument("--keep-subnormals", action="store_true", help="keep subnormal weights (default: flush them to zero)")
    p.add_argument("--exporter", default="torchscript",
                   help="ONNX exporter: torchscript (opset 17, default: widest converter support) or dynamo (opset 20)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim simplification")
    from edgekd.backends.base import Backend

    g = p.add_argument_group(f"pre/post-processing inside the graph ({', '.join(backends_where(Backend.fuses_pre_post))})")
    g.add_argument("--embed-pre-post", action="store_true",
                   help="the artifact takes the camera's uint8 HxWx3 frame and returns the uint8 class map: resize, "
                        "normalisation and argmax inside the graph; written to <backend>-<precision>-fused/")
    g.add_argument("--camera-size", default=None, metavar="HxW", help="camera frame size the fused graph takes (default: the input size)")
    g.add_argument("--channel-order", default="rgb", help="channel order of the camera frames: rgb (default) | bgr (OpenCV)")
    g.add_argument("--class-map-size", default="network",
                   help="network (default: class map at the network's input size) | camera (resized back, nearest)")
    gated = backends_where(lambda b: "max_accuracy_drop" in b.export_options)
    g = p.add_argument_group(f"INT8 ({', '.join(gated)})")
    g.add_argument("--max-accuracy-drop", default=None, metavar="POINTS|off",
                   help="INT8 accuracy gate: max mIoU drop in points vs FP32 on the parity images (default 1%% of the FP32 mIoU; "
                        "'off' = plain PTQ); no configuration meeting it → error, no artifact")
    _add_backend_flags(p)


# export options the pipeline reads for several backends: declared once above, not per backend
_PIPELINE_OPTIONS = ("max_accuracy_drop", "calib_method")


def _backend_flags() -> list[tuple[str, list[tuple[str, str, type]]]]:
    """(group title, [(option, help, type)]) per backend, from what each backend declares."""
    from edgekd.backends.registry import get_backend, list_backends

    groups = []
    for name in list_backends():
        backend = get_backend(name)
        own = [(key, text, backend.export_option_types.get(key, str))
               for key, text in backend.export_options.items() if key not in _PIPELINE_OPTIONS]
        if own:
            groups.append((backend.export_group or name, own))
    return groups


def _add_backend_flags(p: argparse.ArgumentParser) -> None:
    """One flag per backend export option (``coreml_weights`` → ``--coreml-weights``), grouped by backend."""
    for title, options in _backend_flags():
        g = p.add_argument_group(title)
        for key, text, kind in options:
            flag, text = "--" + key.replace("_", "-"), text.replace("%", "%%")
            if kind is bool:
                g.add_argument(flag, action="store_true", default=None, help=text)
            else:
                g.add_argument(flag, type=kind, default=None, help=text)


def _options(args: argparse.Namespace) -> dict:
    """Only the options the user set, so an option no chosen backend reads can be refused."""
    options = {"max_accuracy_drop": args.max_accuracy_drop, "opset": args.opset,
               "onnx_simplify": False if args.no_simplify else None}
    options.update({key: getattr(args, key, None) for _, group in _backend_flags() for key, _, _ in group})
    return {k: v for k, v in options.items() if v is not None}


def print_precision_table() -> None:
    from edgekd.backends.registry import get_backend, list_backends

    print("backend      precisions        here")
    for name in list_backends():
        backend = get_backend(name)
        ok, reason = backend.is_available()
        print(f"{name:12} {', '.join(backend.precisions):17} {'installed' if ok else reason}")
    print("--backend NAME pairs with every --precision; NAME:PRECISION pins one pair (e.g. coreml:fp16).")


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from edgekd.errors import EdgekdError

    if args.list_precisions:
        print_precision_table()
        return 0
    missing = [f for f, v in (("CHECKPOINT", args.checkpoint), ("--backend", args.backend), ("--out", args.out)) if not v]
    if missing:
        raise EdgekdError(f"missing {' and '.join(missing)}; e.g. edgekd export student.safetensors --backend onnxruntime "
                          "--out artifacts/ (edgekd export --list-precisions shows the backends)")

    from edgekd.export import ExportOptions, export_artifacts, read_manifest

    from edgekd.core.tables import table_console

    console = table_console()
    opts = ExportOptions(
        backends=args.backend, precisions=args.precision, out_dir=args.out, calib_dir=args.calib,
        calib_size=args.calib_images, calib_split=args.calib_split, calib_method=args.calib_method, data_dir=args.data,
        data_split=args.data_split, parity_images=args.parity_images, parity_threshold=args.parity_threshold,
        input_size=args.input_size, dynamic_batch=args.dynamic_batch, force=args.force, arch=args.arch,
        num_classes=args.num_classes, keep_subnormals=args.keep_subnormals, exporter=args.exporter,
        backend_options=_options(args), embed_pre_post=args.embed_pre_post, camera_size=args.camera_size,
        channel_order=args.channel_order, class_map_size=args.class_map_size,
    )
    paths = export_artifacts(args.checkpoint, opts, log=lambda message: console.print(f"[dim]{escape(message)}[/dim]"))
    artifacts = [(path, read_manifest(path)) for path in paths]
    _print_summary(console, artifacts)
    failed = [path.name for path, manifest in artifacts if manifest["parity"].get("status") == "failed"]
    if failed:  # kept for inspection, but the call did not produce usable artifacts
        console.print(f"[bold red]parity failed for {escape(', '.join(failed))}: these artifacts are not usable[/bold red]")
        return 1
    return 0


def _print_summary(console, artifacts: list) -> None:
    from rich.markup import escape

    from edgekd.core.tables import NUMBER, Col, FitTable
    from edgekd.parity import worst_warning

    if not artifacts:
        return
    table = FitTable([Col("artifact"), Col("size MB", NUMBER), Col("max |Δlogit|", NUMBER), Col("argmax agree", NUMBER),
                      Col("mIoU Δ pts", NUMBER), Col("parity")], title=escape(f"edgekd export → {artifacts[0][0].parent}"))
    for path, manifest in artifacts:
        p = manifest["parity"]
        style = "red" if worst_warning(p) else ("green" if p.get("status") == "ok" else "yellow")
        if p.get("status") in ("ok", "below_threshold"):
            delta = "n/a" if p.get("miou_delta") is None else f"{p['miou_delta'] * 100:+.2f}"
            logit = "class map" if p.get("max_abs_logit_diff") is None else f"{p['max_abs_logit_diff']:.1e}"
            cells = (logit, f"{p['argmax_agreement'] * 100:.2f}%", delta, f"{p['status']} ({p['variant']})")
        else:
            cells = ("-", "-", "-", p.get("status", "?"))
        table.add_row(escape(path.name), f"{manifest['size_bytes'] / 1e6:.2f}", *[f"[{style}]{escape(c)}[/{style}]" for c in cells])
    console.print(table)
    for path, manifest in artifacts:
        p = manifest["parity"]
        gate = manifest.get("accuracy_gate")
        if gate and gate.get("status") == "passed":
            console.print(f"{path.name}: INT8 mIoU {gate['int8_miou']:.2f} vs FP32 {gate['fp32_miou']:.2f} (drop {gate['drop_points']:.2f} "
                          f"≤ {gate['max_drop_points']:g} points, {gate['validation_images']} images); {len(gate['float_layers'])} layers in float")
        if p.get("status") not in ("ok", "below_threshold"):
            console.print(f"[yellow]{path.name}: parity {p.get('status')} — {escape(p.get('reason', ''))}[/yellow]")
        warning = worst_warning(p)
        if warning:
            console.print(f"[bold red]PARITY WARNING {path.name}: {escape(warning)}[/bold red]")
