"""``edgekd devices``: the device profiles with their backends and real-time budgets."""
from __future__ import annotations

import argparse

NAME = "devices"
HELP = "List device profiles with their backend, precisions and real-time budget."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one profile in full (name, alias or YAML path)")


def _detail(name: str) -> None:
    import dataclasses
    import json

    from edgekd.profiles import load_profile

    profile = load_profile(name)
    print(json.dumps(dataclasses.asdict(profile), indent=2, default=str))


def run(args: argparse.Namespace) -> int:
    from rich.markup import escape

    from edgekd.core.tables import NUMBER, TEXT, Col, FitTable, table_console

    from edgekd.profiles import list_profiles

    if args.name:
        _detail(args.name)
        return 0
    table = FitTable([Col("name"), Col("backend"), Col("precisions"), Col("input", NUMBER), Col("camera", NUMBER), Col("FPS", NUMBER),
                      Col("budget ms", NUMBER), Col("memory MB", NUMBER), Col("connection"), Col("hardware", TEXT)],
                     title="device profiles")
    for p in list_profiles():
        rt, hw, cam = p.real_time, p.hardware, p.camera
        conn = "local" if p.connection.type == "local" else f"ssh {p.connection.host or '(--host)'}"
        backends = p.backend + (f" (+{', '.join(p.accepted_backends[1:])})" if len(p.accepted_backends) > 1 else "")
        name = p.name + (f" ({', '.join(p.aliases)})" if p.aliases else "")
        cells = [name, backends, ",".join(p.precisions), f"{p.input_size[0]}x{p.input_size[1]}",
                 f"{cam.width}x{cam.height}@{cam.fps:g}", f"{rt.target_fps:g}", f"{rt.latency_budget_ms:g}",
                 f"{rt.memory_budget_mb:g}", conn, f"{hw.cpu or '?'}" + (f", {hw.memory_gb:g} GB" if hw.memory_gb else "")]
        table.add_row(*(escape(c) for c in cells))  # profile text is data, never markup
    table_console().print(table)
    return 0
