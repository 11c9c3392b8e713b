"""Where edgekd keeps what it can rebuild (synthetic datasets, FP32 reference artifacts)."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$EDGEKD_CACHE``, else ``$XDG_CACHE_HOME/edgekd``, else ``~/.cache/edgekd``."""
    if os.environ.get("EDGEKD_CACHE"):
        return Path(os.environ["EDGEKD_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "edgekd"
