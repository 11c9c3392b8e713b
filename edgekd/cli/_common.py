"""Helpers shared by subcommands: argument parsers and the progress display."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager

from edgekd.errors import EdgekdError
from edgekd.input_sizes import parse_hw

parse_size = parse_hw  # 'HxW' → (H, W): the one parser, edgekd.input_sizes


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for HxW (argparse turns the error into a usage message)."""
    import argparse

    try:
        return parse_size(text)
    except EdgekdError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


@contextmanager
def progress_bar(enabled: bool = True):
    """A rich progress display on stderr, or None when disabled or not a terminal-friendly run."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        console=Console(stderr=True), transient=False,
    ) as progress:
        yield progress


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=float)
    sys.stdout.write("\n")
