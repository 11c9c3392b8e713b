"""Facts about the machine a cell runs on: CPU, cores, memory, OS, load, clocks and power mode.

Recorded next to every figure because speed on a shared or throttled machine means little
without them (FACTS.md: contention moved PyTorch eager from 47 ms to 0.5-1.9 s). Everything is
read where readable; what cannot be read is given as ``None`` with the reason beside it.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, macOS sysctl), else the platform's processor string."""
    text = _read(Path("/proc/cpuinfo"))
    if text:
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    if platform.system() == "Darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out
    return platform.processor() or platform.machine()


def memory_total_gb() -> float | None:
    text = _read(Path("/proc/meminfo"))
    if text:
        for line in text.splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 2)
    if platform.system() == "Darwin":
        out = _run(["sysctl", "-n", "hw.memsize"])
        if out and out.isdigit():
            return round(int(out) / 1024**3, 2)
    return None


def physical_cores() -> int | None:
    try:
        import psutil

        return psutil.cpu_count(logical=False)
    except ImportError:
        return None


def detect_hardware() -> dict[str, Any]:
    """The hardware facts a profile may ask to ``detect``."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gb": memory_total_gb()}


def _run(cmd: list[str], timeout: float = 5.0) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def cpu_clocks(root: Path = Path("/sys/devices/system/cpu")) -> dict[str, Any]:
    """Current frequency (MHz) and governor per CPU from cpufreq, or the reason they are absent."""
    freqs, governors = {}, set()
    for cpu in sorted(root.glob("cpu[0-9]*")):
        cur = _read(cpu / "cpufreq" / "scaling_cur_freq")
        if cur and cur.isdigit():
            freqs[cpu.name] = int(cur) // 1000
        gov = _read(cpu / "cpufreq" / "scaling_governor")
        if gov:
            governors.add(gov)
    if not freqs:
        return {"cpu_mhz": None, "governor": None, "reason": f"no cpufreq under {root} (VM or kernel without cpufreq)"}
    return {"cpu_mhz": freqs, "governor": sorted(governors)}


def jetson_power_mode() -> dict[str, Any]:
    """``nvpmodel -q`` (power mode name and id) and GPU clock on a Jetson; a reason elsewhere."""
    out = _run(["nvpmodel", "-q"])
    if out is None:
        return {"power_mode": None, "reason": "nvpmodel not found (not a Jetson)"}
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    mode = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("NV Power Mode")), None)
    gpu = {}
    for dev in Path("/sys/class/devfreq").glob("*"):
        cur = _read(dev / "cur_freq")
        if cur and cur.isdigit() and ("gpu" in dev.name or "gv11b" in dev.name or "ga10b" in dev.name):
            gpu[dev.name] = int(cur) // 1_000_000
    return {"power_mode": mode, "nvpmodel": lines[-1] if lines else None, "gpu_mhz": gpu or None}


def host_facts() -> dict[str, Any]:
    """What the result record's ``host`` block holds; cheap enough to take at the start of every cell."""
    return {
        "hostname": platform.node(),
        "cpu": cpu_model(),
        "cores_logical": os.cpu_count(),
        "cores_physical": physical_cores(),
        "memory_gb": memory_total_gb(),
        "os": platform.platform(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_avg_start": load_average(),
        "clocks": cpu_clocks(),
        "power": jetson_power_mode(),
    }
