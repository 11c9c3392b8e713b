"""Energy per frame: Intel RAPL through Linux powercap, tegrastats on Jetson, else a stated reason.

RAPL (``/sys/class/powercap/intel-rapl:N/energy_uj``) counts micro-joules per package since boot
and wraps at ``max_energy_range_uj``; a reading across a wrap adds the range back. Since Linux
5.10 (CVE-2020-8694, "Platypus") ``energy_uj`` is readable by root only: a permission error gives
``None`` and says how to grant access. RAPL covers the whole CPU package, so other processes'
work is included: the row records the load average beside it.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekd.bench.tegrastats import TegrastatsMonitor, summarize_samples

POWERCAP_ROOT = Path("/sys/class/powercap")
_TOP_LEVEL = re.compile(r"^intel-rapl:\d+$")


@dataclass(frozen=True)
class RaplDomain:
    name: str  # e.g. package-0, psys
    path: Path
    max_range_uj: int


class RaplReader:
    """The top-level RAPL domains (packages, and ``psys`` where the platform offers it)."""

    def __init__(self, root: Path = POWERCAP_ROOT) -> None:
        self.root = root

    def domains(self) -> list[RaplDomain]:
        found = []
        for d in sorted(self.root.glob("intel-rapl:*")):
            if not _TOP_LEVEL.match(d.name):
                continue  # sub-zones (core, uncore, dram) are parts of their package
            name = (d / "name").read_text().strip() if (d / "name").exists() else d.name
            max_range = int((d / "max_energy_range_uj").read_text().strip())
            found.append(RaplDomain(name, d / "energy_uj", max_range))
        return found

    def status(self) -> tuple[bool, str]:
        """(True, "") when counters can be read now, else (False, the reason and the fix)."""
        if not self.root.is_dir():
            return False, f"no {self.root} (no RAPL here: a VM, a non-Intel/AMD CPU, or powercap not enabled)"
        try:
            domains = self.domains()
        except (OSError, ValueError) as err:
            return False, f"cannot list RAPL domains under {self.root}: {err}"
        if not domains:
            return False, f"{self.root} has no intel-rapl:N domains"
        try:
            self.read()
        except PermissionError:
            return False, (f"{domains[0].path} is readable by root only (Linux >= 5.10, CVE-2020-8694); "
                           "run as root or `sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj`")
        except OSError as err:
            return False, f"cannot read {domains[0].path}: {err}"
        return True, ""

    def read(self) -> dict[str, int]:
        return {d.name: int(d.path.read_text().strip()) for d in self.domains()}

    def joules(self, start: dict[str, int], end: dict[str, int]) -> dict[str, float]:
        """Energy per domain between two readings, handling one counter wrap per domain."""
        ranges = {d.name: d.max_range_uj for d in self.domains()}
        return {name: wrapped_delta(start[name], end[name], ranges[name]) / 1e6 for name in start if name in end}


def wrapped_delta(start_uj: int, end_uj: int, max_range_uj: int) -> int:
    """Counter difference; a counter that wrapped past ``max_range_uj`` to 0 gets the range added back."""
    return end_uj - start_uj if end_uj >= start_uj else end_uj + max_range_uj - start_uj


class EnergyMeter:
    """Measures one window: ``begin()``, run frames, ``end(frames)`` -> energy block of the result row."""

    source = "none"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def begin(self) -> None:
        return None

    def end(self, frames: int) -> dict[str, Any]:
        return {"source": None, "energy_per_frame_mj": None, "avg_power_w": None, "reason": self.reason}

    def close(self) -> None:
        return None


class RaplMeter(EnergyMeter):
    source = "rapl"

    def __init__(self, reader: RaplReader) -> None:
        super().__init__("")
        self.reader = reader
        self._start: dict[str, int] = {}
        self._t0 = 0

    def begin(self) -> None:
        self._start = self.reader.read()
        self._t0 = time.perf_counter_ns()

    def end(self, frames: int) -> dict[str, Any]:
        end = self.reader.read()
        seconds = (time.perf_counter_ns() - self._t0) / 1e9
        per_domain = self.reader.joules(self._start, end)
        packages = {k: v for k, v in per_domain.items() if k.startswith("package")}
        total = sum(packages.values()) if packages else sum(per_domain.values())
        return {
            "source": "rapl", "scope": "CPU package(s), all processes" if packages else "RAPL domains " + ",".join(per_domain),
            "joules": total, "seconds": seconds, "frames": frames,
            "avg_power_w": total / seconds if seconds > 0 else None,
            "energy_per_frame_mj": total / frames * 1000 if frames else None,
            "domains_j": per_domain,
        }


class TegrastatsMeter(EnergyMeter):
    source = "tegrastats"

    def __init__(self, monitor: TegrastatsMonitor) -> None:
        super().__init__("")
        self.monitor = monitor
        self._t0 = 0

    def begin(self) -> None:
        self._t0 = time.perf_counter_ns()

    def end(self, frames: int) -> dict[str, Any]:
        t1 = time.perf_counter_ns()
        seconds = (t1 - self._t0) / 1e9
        summary = summarize_samples(self.monitor.between(self._t0, t1))
        watts = summary["input_power_w"]
        if watts is None:
            return {"source": "tegrastats", "energy_per_frame_mj": None, "avg_power_w": None, "tegrastats": summary,
                    "reason": f"no power reading in {summary['samples']} tegrastats samples ({summary['power_rule']}); "
                              f"lengthen --duration beyond the {self.monitor.interval_ms} ms interval"}
        joules = watts * seconds
        return {
            "source": "tegrastats", "scope": summary["power_rule"], "joules": joules, "seconds": seconds,
            "frames": frames, "avg_power_w": watts, "energy_per_frame_mj": joules / frames * 1000 if frames else None,
            "tegrastats": summary,
        }

    def close(self) -> None:
        self.monitor.stop()


def make_energy_meter(rapl: bool, tegrastats: bool, tegrastats_interval_ms: int = 100,
                      powercap_root: Path = POWERCAP_ROOT) -> EnergyMeter:
    """The meter a profile's sensors allow here; a plain ``EnergyMeter`` carries the reason when none works."""
    if tegrastats:
        ok, reason = TegrastatsMonitor.available()
        if ok:
            monitor = TegrastatsMonitor(tegrastats_interval_ms)
            monitor.start()
            return TegrastatsMeter(monitor)
        if not rapl:
            return EnergyMeter(reason)
    if rapl:
        reader = RaplReader(powercap_root)
        ok, reason = reader.status()
        return RaplMeter(reader) if ok else EnergyMeter(reason)
    return EnergyMeter("the device profile lists no power sensor (sensors.rapl and sensors.tegrastats are false)")
