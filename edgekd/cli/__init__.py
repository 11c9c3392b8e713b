"""The ``edgekd`` command: a thin layer over the library API.

Each subcommand lives in its own module in this package and exposes ``NAME``, ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``; they are found by listing the package,
so adding a subcommand is adding a file.

No user sees a raw traceback: an ``EdgekdError`` (bad input) is one line and exit 2; any other
exception is an internal error, printed as one line naming where its full trace was written,
exit 1. ``--debug`` (before or after the subcommand) prints the trace instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
import tempfile
import traceback
from datetime import datetime, timezone
from pathlib import Path

from edgekd import __version__
from edgekd.cli._common import HelpFormatter
from edgekd.errors import EdgekdError

DEBUG_ENV = "EDGEKD_DEBUG"


def _subcommand_modules() -> list:
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekd",
        description="Distill real-time segmentation students, export them to edge runtimes, benchmark them on devices.",
    )
    parser.add_argument("--version", action="version", version=f"edgekd {__version__}")
    parser.add_argument("--debug", action="store_true", help=f"show full tracebacks for errors (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _subcommand_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter)
        module.add_arguments(p)
        # SUPPRESS: a subcommand without --debug leaves the top-level value alone
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks for errors")
        p.set_defaults(_run=module.run)
    return parser


def error_message(err: BaseException) -> str:
    """The one-line text of a user-facing error.

    A DataLoader worker re-raises its exception in the main process with the worker's whole
    traceback as the message ("Caught DataError in DataLoader worker process 0. Original
    Traceback ..."); the user gets the original one-line message, as with ``--workers 0``.
    """
    text = str(err)
    if "in DataLoader worker process" in text and "Original Traceback" in text:
        worker = text.split("in DataLoader worker process", 1)[1].split(".", 1)[0].strip()
        name = type(err).__name__
        for line in reversed(text.strip().splitlines()):
            head, sep, rest = line.partition(": ")
            if sep and head.split(".")[-1] == name:
                return f"{rest.strip()} (in DataLoader worker {worker})"
    return " ".join(text.split()) if "\n" in text else text


def write_crash_report(command: str, argv: list[str] | None) -> Path | None:
    """The current exception's full trace in a file (the edgekd cache, else the temp folder); its path."""
    from edgekd.paths import cache_dir

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    body = (f"edgekd {__version__} {command}\nargv: {sys.argv if argv is None else ['edgekd', *argv]}\n"
            f"python {sys.version.split()[0]} on {sys.platform}, {stamp}\n\n{traceback.format_exc()}")
    for folder in (cache_dir() / "crashes", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f"edgekd-crash-{stamp}-{command}-", suffix=".txt", dir=folder)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(body)
            return Path(name)
        except OSError:
            continue
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return int(args._run(args) or 0)
    except EdgekdError as err:
        if debug:
            traceback.print_exc()
        print(f"edgekd {args.command}: error: {error_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgekd {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `edgekd ... | head` closed the pipe: not a bug, and nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 141
    except Exception as err:  # noqa: BLE001 — the last line of defence: one line, the trace in a file
        if debug:
            traceback.print_exc()
            print(f"edgekd {args.command}: internal error: {type(err).__name__}: {error_message(err)}", file=sys.stderr)
            return 1
        report = write_crash_report(args.command, argv)
        where = f"full trace in {report}" if report else "the trace could not be written"
        print(f"edgekd {args.command}: internal error (a bug in edgekd or a library it calls): {type(err).__name__}: "
              f"{error_message(err)[:300]} — {where}; re-run with --debug to see it", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
