"""Temporaries of an export: the folders it builds in, and the cleanup of those a killed export left.

Every temporary carries the exporting process id, so a later export (or a bench) can tell a live
export's work from a dead one's without locks.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Callable

Log = Callable[[str], None]


WORK_PREFIX = ".edgekd-work-"
_OWNED_PID = re.compile(r"[.-]pid(\d+)[.-]")
LEGACY_STALE_S = 600  # temporaries named without a pid (edgekd before 0.x): stale when untouched this long


def missing_ancestors(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, deepest first."""
    missing = []
    for path in [folder, *folder.parents]:
        if path.exists():
            break
        missing.append(path)
    return missing


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def is_export_temporary(path: Path) -> bool:
    """A folder export builds in and renames or deletes when it ends: ``.<backend>-<precision>*.tmp`` or
    ``.edgekd-work-*``. Nothing else (a bench, a user) should read one."""
    return path.name.startswith(WORK_PREFIX) or (path.name.startswith(".") and path.name.endswith(".tmp"))


def clean_stale_temporaries(root: Path, log: Log) -> list[Path]:
    """Delete the temporaries a killed export left in ``root``; those of a live export are kept.

    Temporaries carry their export's pid (``.pid<N>.``): one whose process is gone is stale. Older
    ones without a pid are stale once untouched for ``LEGACY_STALE_S``.
    """
    removed = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if not path.is_dir() or not is_export_temporary(path):
            continue
        owner = _OWNED_PID.search(path.name)
        if owner and (int(owner[1]) == os.getpid() or _pid_alive(int(owner[1]))):
            continue
        # wall-clock time on purpose: it is compared with the folder's mtime, itself a wall-clock stamp
        if not owner and time.time() - path.stat().st_mtime < LEGACY_STALE_S:
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
        log(f"removed {path.name}, left by an export that did not finish")
    return removed
