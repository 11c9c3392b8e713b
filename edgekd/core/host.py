"""Facts about the machine a cell runs on: CPU, cores, memory, OS, load, clocks and power mode.

Recorded next to every figure because speed on a shared or throttled machine means little
without them (docs/bench.md: contention moved PyTorch eager from 47 ms to 0.5-1.9 s). Everything is
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


PROBED = ("peak_fp32_tflops", "peak_bf16_tflops", "peak_int8_tops", "memory_bandwidth_gbs")


def detect_hardware(wanted: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """The hardware facts a profile may ask to ``detect``; the peaks (``PROBED``) come from
    ``edgekd.core.hostprobe`` (measured once per CPU and cached) and only when ``wanted``."""
    facts: dict[str, Any] = {"cpu": cpu_model(), "cores": os.cpu_count(), "memory_gb": memory_total_gb()}
    if wanted is not None and any(k in PROBED for k in wanted):
        from edgekd.core.hostprobe import host_peaks

        peaks = host_peaks()
        facts.update({k: peaks.get(k) for k in PROBED})
    else:
        facts.update({k: None for k in PROBED})
    return facts


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


# Instruction-set features that decide runtime kernels and default precisions (OpenVINO runs bf16
# by default on AVX512-BF16/AMX CPUs; INT8 speed depends on VNNI/AMX-INT8), as Linux names them.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
             "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimddp", "sve", "sve2",
             "i8mm", "bf16", "fphp", "asimdhp")
_MAC_ISA = {"hw.optional.arm.FEAT_DotProd": "asimddp", "hw.optional.arm.FEAT_I8MM": "i8mm",
            "hw.optional.arm.FEAT_BF16": "bf16", "hw.optional.arm.FEAT_FP16": "fphp", "hw.optional.neon": "asimd"}


def cpu_features(cpuinfo: str | None = None) -> dict[str, Any]:
    """ISA features present (from /proc/cpuinfo ``flags``/``Features``, or macOS sysctl), with a summary.

    ``isa`` lists the ones of ``ISA_FLAGS`` found; ``summary`` is the short form used in tables
    (e.g. ``AVX-512+VNNI+AMX-BF16``); None with a reason when nothing is readable."""
    text = cpuinfo if cpuinfo is not None else _read(Path("/proc/cpuinfo"))
    flags: set[str] = set()
    if text:
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags.update(value.split())
                break
    elif platform.system() == "Darwin":
        for key, name in _MAC_ISA.items():
            if _run(["sysctl", "-n", key]) == "1":
                flags.add(name)
    if not flags:
        return {"isa": None, "summary": None, "reason": "no /proc/cpuinfo flags or sysctl features readable"}
    isa = [f for f in ISA_FLAGS if f in flags]
    parts = [label for label, present in (
        ("AVX2", "avx2" in flags), ("AVX-512", "avx512f" in flags),
        ("VNNI", "avx512_vnni" in flags or "avx_vnni" in flags), ("AVX512-BF16", "avx512_bf16" in flags),
        ("AVX512-FP16", "avx512_fp16" in flags), ("AMX-BF16", "amx_bf16" in flags), ("AMX-INT8", "amx_int8" in flags),
        ("NEON", "asimd" in flags), ("dot", "asimddp" in flags), ("I8MM", "i8mm" in flags), ("BF16", "bf16" in flags),
        ("SVE", "sve" in flags)) if present]
    return {"isa": isa, "summary": "+".join(parts) or "baseline (none of the listed extensions)"}


def cpu_times() -> dict[str, float] | None:
    """Machine-wide busy / steal CPU seconds (/proc/stat) and this process's own (/proc/self/stat), now."""
    stat, own = _read(Path("/proc/stat")), _read(Path("/proc/self/stat"))
    if not stat or not own:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    fields = [int(v) for v in stat.splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    own_fields = own.rsplit(")", 1)[1].split()
    utime, stime = int(own_fields[11]), int(own_fields[12])
    import time

    return {"t": time.monotonic(), "busy_s": (user + nice + system + irq + softirq) / ticks, "steal_s": steal / ticks,
            "own_s": (utime + stime) / ticks}


def other_cpu_load(start: dict[str, float] | None, end: dict[str, float] | None) -> dict[str, Any]:
    """CPU taken by other processes between two ``cpu_times`` snapshots, in cores (1.0 = one core busy).

    ``other_cores`` = machine busy time minus this process's, over the wall time; ``steal_cores``
    is time the hypervisor gave to other guests (a shared VM's noise no process list shows)."""
    if not start or not end or end["t"] <= start["t"]:
        return {"other_cores": None, "steal_cores": None, "reason": "no /proc/stat here"}
    wall = end["t"] - start["t"]
    busy = end["busy_s"] - start["busy_s"]
    own = end["own_s"] - start["own_s"]
    return {"other_cores": round(max(0.0, busy - own) / wall, 3), "steal_cores": round((end["steal_s"] - start["steal_s"]) / wall, 3),
            "own_cores": round(own / wall, 3), "seconds": round(wall, 3)}


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
        "cpu_features": cpu_features(),
        "python": platform.python_version(),
        "load_avg_start": load_average(),
        "clocks": cpu_clocks(),
        "power": jetson_power_mode(),
    }
