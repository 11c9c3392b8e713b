"""Helpers shared by subcommands: argument parsers and the progress display."""
from __future__ import annotations

import json
import re
import sys
from contextlib import contextmanager

from edgekd.errors import EdgekdError

_SIZE = re.compile(r"^(\d+)[xX](\d+)$")


def parse_size(text: str) -> tuple[int, int]:
    """'360x480' → (360, 480): height × width, both positive."""
    m = _SIZE.match(text.strip())
    if not m or int(m[1]) <= 0 or int(m[2]) <= 0:
        raise EdgekdError(f"size {text!r} is not HxW with positive integers, e.g. 360x480")
    return int(m[1]), int(m[2])


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
