"""`edgekd estimate`: roofline latency estimates for a device not at hand, clearly labelled as estimates.

Estimates are printed, never written to bench_results/ (that folder holds measurements only).
"""
from __future__ import annotations

import argparse

NAME = "estimate"
HELP = "Roofline latency ESTIMATE of a checkpoint or ONNX graph on a device profile (not a measurement)."


def add_arguments(p: argparse.ArgumentParser) -> None:
    from edgekd.cli._common import size_arg

    p.add_argument("target", help="an .onnx graph, or a checkpoint (.safetensors; .pt/.pth with --arch) exported on the fly")
    p.add_argument("--device", required=True, help="device profile name (see device_profiles/)")
    p.add_argument("--precision", action="append", default=None, help="fp32 | fp16 | bf16 | int8 (repeat; default: the profile's)")
    p.add_argument("--arch", default=None, help="architecture of a third-party state dict")
    p.add_argument("--num-classes", type=int, default=None, help="class count of a third-party state dict")
    p.add_argument("--input-size", type=size_arg, default=None, help="HxW for checkpoints (default: the profile's input_size)")
    p.add_argument("--efficiency", type=float, default=None, help="share of the roofline reached, overriding the calibrated one")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak TFLOPS/TOPS overriding the profile's")
    p.add_argument("--bandwidth-gbs", type=float, default=None, help="memory bandwidth GB/s overriding the profile's")
    p.add_argument("--layers", type=int, default=5, help="slowest layers to list (default 5)")
    p.add_argument("--json", action="store_true", help="print the estimates as JSON")


def run(args: argparse.Namespace) -> int:
    from edgekd.cli._common import print_json
    from edgekd.core.tables import table_console
    from edgekd.estimate.targets import estimate_target

    overrides = {k: v for k, v in (("efficiency", args.efficiency), ("peak_tflops", args.peak_tflops),
                                   ("bandwidth_gbs", args.bandwidth_gbs)) if v is not None}
    estimates, skipped = estimate_target(args.target, args.device, args.precision, arch=args.arch,
                                         num_classes=args.num_classes, input_size=args.input_size, **overrides)
    if args.json:
        print_json({"kind": "estimate", "estimates": [e.to_dict() for e in estimates], "skipped": skipped})
        return 0
    console = table_console()
    shared = _shared_lines(estimates)
    if shared:
        console.print(f"[bold]{_escape(estimates[0].device)}[/], for every estimate below:")
        for line in shared:
            console.print(line)
    for e in estimates:
        _print(console, e, args.layers, skip=set(shared))
    for reason in skipped:
        console.print(f"skipped {reason}", style="dim", markup=False)
    return 0


def _escape(text) -> str:
    from rich.markup import escape

    return escape(str(text))


def _detail_lines(e) -> list[str]:
    """The explanation lines of one estimate (rich markup, escaped): where the hardware figures come from,
    the efficiency and its source, the notes."""
    return ([f"  hardware source: {_escape(e.basis['hardware_source'])}",
             f"  efficiency {e.efficiency:.3f}: {_escape(e.efficiency_source)}"]
            + [f"  [yellow]note:[/] {_escape(note)}" for note in e.notes])


def _shared_lines(estimates) -> list[str]:
    """Detail lines every estimate has in common (one device, several precisions): printed once, above them.

    The hardware paragraph is the same for fp32, fp16 and int8 of one device; repeated per precision
    it buried the lines that differ. With one estimate nothing is hoisted.
    """
    if len(estimates) < 2 or len({e.device for e in estimates}) != 1:
        return []
    first, rest = _detail_lines(estimates[0]), [set(_detail_lines(e)) for e in estimates[1:]]
    return [line for line in first if all(line in other for other in rest)]


def _print(console, e, layers: int, skip: set[str] = frozenset()) -> None:
    b = e.basis
    escape = _escape
    console.print(f"[bold]estimate[/] (not a measurement) {escape(e.device)} {escape(e.precision)}: [bold]{e.latency_ms:.2f} ms[/] "
                  f"(~{e.fps:.0f} FPS)" + (" = the lower bound itself" if e.at_bound else ""))
    console.print(f"  lower bound (FLOPs ÷ peak) {e.bound_ms:.2f} ms; roofline at 100% efficiency {e.roofline_ms:.2f} ms "
                  "(its memory term assumes DRAM traffic, so caches can beat it)")
    console.print(f"  graph: {escape(str(b['onnx']))}, {e.flops / 1e9:.2f} GFLOPs, {e.bytes / 1e6:.1f} MB moved at "
                  f"{b['bytes_per_element']:g} B/element; {e.memory_bound_layers} memory-bound / {e.compute_bound_layers} compute-bound layers")
    console.print(f"  basis: peak {b['peak']}; bandwidth {b['bandwidth']}", markup=False)
    for line in _detail_lines(e):
        if line not in skip:
            console.print(line)
    if layers > 0 and e.top_layers:
        from edgekd.core.tables import NUMBER, Col, FitTable

        table = FitTable([Col("ms", NUMBER), Col("op"), Col("bound"), Col("layer")], box=None, pad_edge=False)
        for layer in e.top_layers[:layers]:
            table.add_row(f"{layer.ms / e.efficiency:.2f}", escape(layer.op_type), layer.bound, escape(layer.name))
        console.print(table)
