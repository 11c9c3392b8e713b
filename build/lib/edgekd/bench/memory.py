"""Memory of the process running one cell: RSS now, RSS high-water mark, a sampling thread.

Each cell runs in a fresh worker process, so its high-water mark (``VmHWM``) belongs to that
cell alone: no allocator state or cached arenas from an earlier model bleed into the figure.
The sampler adds a time line (RSS per window in sustained runs must stay flat: growth there is a
leak), and the baseline taken before the model is loaded separates the runtime's own footprint
from the model's.
"""
from __future__ import annotations

import os
import resource
import sys
import threading
from pathlib import Path
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        statm = Path("/proc/self/statm").read_text().split()
        return int(statm[1]) * _PAGE / 2**20


def peak_rss_mb() -> float:
    """High-water mark of this process's RSS, in MiB.

    Linux: ``VmHWM`` of /proc/self/status, which belongs to this program's address space.
    ``getrusage(...).ru_maxrss`` is *not* used there: Linux keeps it across fork+exec, so a worker
    started by a 300 MB parent would report the parent's 300 MB (seen here). Elsewhere (macOS)
    ``ru_maxrss`` is the only source (bytes there).
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MiB, kept for comparison: on Linux it includes the parent's
    RSS at fork time (see ``peak_rss_mb``), so it is an upper bound there, not the cell's figure."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class RssSampler:
    """Samples RSS every ``interval_s`` on a daemon thread; ``peak_mb`` catches short spikes that a
    before/after reading would miss (``VmHWM`` catches them too, but only for the whole process)."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


def file_size_mb(paths: list[Path]) -> float:
    """Total size of the model files (directories such as ``.mlpackage`` counted recursively)."""
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            total += p.stat().st_size
    return total / 2**20


def gpu_memory() -> dict[str, Any]:
    """Peak device memory where a CUDA device is in use by this process, else ``None`` with the reason.

    PyTorch is not imported for this (importing it would inflate the RSS being measured); when the
    cell's backend already loaded it, its CUDA allocator statistics are read.
    """
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return {"gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20, "source": "torch.cuda.max_memory_allocated"}
    if Path("/etc/nv_tegra_release").exists():
        return {"gpu_peak_mb": None, "reason": "Jetson unified memory: GPU allocations live in system RAM "
                "(see energy.tegrastats.ram_used_mb), not in a separate pool"}
    if not Path("/proc/driver/nvidia").exists() and sys.platform != "darwin":
        return {"gpu_peak_mb": None, "reason": "no GPU on this machine (no NVIDIA driver)"}
    return {"gpu_peak_mb": None, "reason": "the backend exposes no device-memory statistics"}
