"""`edgekd models`: list the zoo with parameters and MACs."""
from __future__ import annotations

import argparse

from edgekd.cli._common import print_json, size_arg

NAME = "models"
HELP = "List the model zoo (students and teachers) with params and MACs at an input size."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--role", choices=["student", "teacher"], default=None)
    p.add_argument("--input-size", type=size_arg, default=(360, 480), help="HxW for MACs (default 360x480)")
    p.add_argument("--num-classes", type=int, default=11)
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> int:
    import sys

    from edgekd.models import create_model, list_models
    from edgekd.models.complexity import cached_macs, count_params, mac_cache_path

    from edgekd.errors import EdgekdError

    entries, rows, counted = list_models(args.role), [], []

    def progress(name: str) -> None:  # a counted forward takes seconds: say what is happening, on stderr
        counted.append(name)
        print(f"counting MACs of {name} at {args.input_size[0]}x{args.input_size[1]} "
              f"({len(rows) + 1}/{len(entries)}; remembered in {mac_cache_path()})", file=sys.stderr, flush=True)

    for entry in entries:
        model = create_model(entry.name, num_classes=args.num_classes).eval()
        try:
            macs, note = cached_macs(entry.name, model, args.input_size, on_miss=progress), ""
        except EdgekdError as err:  # e.g. a model that needs H, W divisible by 8
            macs, note = None, str(err)
        rows.append({
            "name": entry.name, "role": entry.role, "family": entry.family, "params": count_params(model),
            "macs": macs, "output_stride": model.output_stride, "description": entry.description, "note": note,
        })
    if args.json:
        print_json(rows)
        return 0
    from rich.markup import escape

    from edgekd.core.tables import NUMBER, Col, FitTable, Footnoted, table_console

    h, w = args.input_size
    table = FitTable([Col("name"), Col("role"), Col("params (M)", NUMBER), Col("GMACs", NUMBER), Col("stride", NUMBER)],
                     title=f"edgekd model zoo (MACs at {h}×{w}, {args.num_classes} classes)")
    for r in rows:  # a model's note (why its MACs are n/a) is a footnote: one long cell would squeeze every column
        macs = f"{r['macs'] / 1e9:.2f}" if r["macs"] is not None else "n/a"
        macs = Footnoted.of(macs, f"{r['name']}: {r['note']}" if r["note"] else None)
        table.add_row(escape(r["name"]), r["role"], f"{r['params'] / 1e6:.2f}", macs, str(r["output_stride"]))
    table_console().print(table)
    return 0
