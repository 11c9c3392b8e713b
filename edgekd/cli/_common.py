"""Helpers shared by subcommands: argument parsers and the progress display."""
from __future__ import annotations

import argparse
import copy
import json
import sys
from contextlib import contextmanager

from edgekd.errors import EdgekdError
from edgekd.input_sizes import parse_hw

parse_size = parse_hw  # 'HxW' → (H, W): the one parser, edgekd.input_sizes


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for HxW (argparse turns the error into a usage message)."""
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


def add_torch_device_argument(p, default: str) -> None:
    """``--torch-device`` (PyTorch device), plus the old ``--device`` spelling, hidden: it now names a
    device profile in every other command, so here it is accepted only for torch device names."""
    p.add_argument("--torch-device", default=None, metavar="DEVICE",
                   help=f"PyTorch device: auto, cpu, cuda, cuda:N, mps (default {default})")
    p.add_argument("--device", dest="legacy_torch_device", default=None, help=argparse.SUPPRESS)
    p.set_defaults(torch_device_default=default)


def torch_device_from_args(args) -> str:
    """The checked torch device of a train/eval/distill command line (one-line error when bad)."""
    from edgekd.torch_device import check_torch_device, is_torch_device_name

    legacy = getattr(args, "legacy_torch_device", None)
    if legacy is not None:
        if not is_torch_device_name(legacy):
            raise EdgekdError(f"--device {legacy!r}: in this command --device is not a device profile; "
                              "the PyTorch device is --torch-device (auto, cpu, cuda, cuda:N, mps), and device "
                              "profiles go to bench/doctor/estimate --device")
        if args.torch_device is None:
            print(f"warning: --device {legacy} is deprecated here; use --torch-device {legacy}", file=sys.stderr)
            args.torch_device = legacy
    return check_torch_device(args.torch_device or args.torch_device_default)


class _WarnsOnOldSpelling:
    """Mixed into an argparse action class: using one of its old option strings prints one warning line."""

    deprecated: dict[str, str] = {}

    def __call__(self, parser, namespace, values, option_string=None):
        new = self.deprecated.get(option_string)
        if new is not None:
            warned = getattr(namespace, "_deprecated_warned", set())
            if option_string not in warned:
                print(f"warning: {option_string} is deprecated; use {new} (same meaning, see docs/cli.md)", file=sys.stderr)
                namespace._deprecated_warned = warned | {option_string}
        super().__call__(parser, namespace, values, option_string)


def add_renamed_argument(p, new: str, *old: str, **kwargs):
    """``p.add_argument(new, **kwargs)`` that also accepts the ``old`` spellings (one warning line each).

    The old spellings are extra option strings of the same action, so they parse exactly like the
    new one and fill the same ``dest``; README lines, scripts and recipes written with them keep
    working while the warning teaches the new name. ``--help`` shows only the new name
    (``HelpFormatter`` below); docs/cli.md has the table of renames.
    """
    action = p.add_argument(new, *old, **kwargs)
    action.__class__ = type(f"Renamed{type(action).__name__}", (_WarnsOnOldSpelling, type(action)), {})
    action.deprecated = {o: new for o in old}
    return action


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` without the deprecated spellings of renamed flags (they still parse)."""

    def _format_action_invocation(self, action):
        old = getattr(action, "deprecated", None)
        if not old:
            return super()._format_action_invocation(action)
        shown = copy.copy(action)
        shown.option_strings = [s for s in action.option_strings if s not in old]
        return super()._format_action_invocation(shown)
