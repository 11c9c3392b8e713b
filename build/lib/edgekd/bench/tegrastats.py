"""Parse NVIDIA Jetson ``tegrastats`` lines and sample them while a benchmark runs.

Formats differ by module and JetPack release (real lines in tests/data/tegrastats/):

- Orin (JetPack 5/6):  ``RAM 6185/7620MB (lfb 8x2MB) SWAP ... CPU [15%@729,...] EMC_FREQ 43%@2133
  GR3D_FREQ 63%@[621] ... cpu@53.968C ... VDD_IN 12479mW/12479mW VDD_CPU_GPU_CV 4667mW/4667mW ...``
  (AGX Orin: ``GR3D_FREQ 0%@[0,0]``, rails ``VDD_GPU_SOC``, ``VDD_CPU_CV``, ``VIN_SYS_5V0``; absent
  sensors read ``-256C``);
- Xavier / TX2 / Nano (JetPack 4): rails without units, ``VDD_IN 3140/3208``, ``POM_5V_IN 2545/2547``,
  ``GPU 463/463 ... SYS5V 3306/3306`` (AGX Xavier), ``GR3D_FREQ 0%``;
- TX1 (L4T 28): ``cpu [17%,13%,29%,5%]@408 EMC 1%@408 APE 25 GR3D 3%@76``.

Rails report instantaneous/average milliwatts. Board input power is ``VDD_IN`` (TX1/TX2/Xavier NX/
Orin NX/Nano) or ``POM_5V_IN`` (Nano); modules without an input rail (AGX Xavier, AGX Orin) get
the sum of their rails, and the sample says which rule applied.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_TIMESTAMP = re.compile(r"^\s*(\d{2}-\d{2}-\d{4} \d{2}:\d{2}:\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)MB")
_CPU = re.compile(r"\b[Cc][Pp][Uu] \[([^\]]*)\](?:@(\d+))?")
_GPU = re.compile(r"\bGR3D(?:_FREQ)? (\d+)%(?:@\[?([\d,]+)\]?)?")
_EMC = re.compile(r"\bEMC(?:_FREQ)? (\d+)%(?:@(\d+))?")
_TEMP = re.compile(r"(?<![\w%])([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?:/\d+(?:mW)?)?(?=\s|$)")
_NOT_RAILS = {"RAM", "SWAP", "IRAM", "NC"}
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")
ABSENT_SENSOR_C = -256.0


@dataclass
class TegraSample:
    """One tegrastats line, parsed. Missing fields stay ``None`` / empty."""

    timestamp: str | None = None
    ram_used_mb: int | None = None
    ram_total_mb: int | None = None
    swap_used_mb: int | None = None
    swap_total_mb: int | None = None
    cpu_load_pct: list[int | None] = field(default_factory=list)  # None = core off
    cpu_freq_mhz: list[int | None] = field(default_factory=list)
    gpu_load_pct: int | None = None
    gpu_freq_mhz: list[int] = field(default_factory=list)
    emc_load_pct: int | None = None
    emc_freq_mhz: int | None = None
    temperatures_c: dict[str, float | None] = field(default_factory=dict)  # None = sensor absent (-256C)
    rails_mw: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (current, average)

    def input_power_mw(self) -> tuple[float | None, str]:
        """Board input power now, and the rule used to get it."""
        for rail in INPUT_RAILS:
            if rail in self.rails_mw:
                return float(self.rails_mw[rail][0]), rail
        if self.rails_mw:
            return float(sum(cur for cur, _ in self.rails_mw.values())), "sum of rails " + "+".join(self.rails_mw)
        return None, "no power rails in this tegrastats line (module without INA3221 monitor, or not root)"


def _parse_cpu(sample: TegraSample, body: str, shared_freq: str | None) -> None:
    for entry in body.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if entry == "off":
            sample.cpu_load_pct.append(None)
            sample.cpu_freq_mhz.append(None)
            continue
        load, _, freq = entry.partition("@")
        sample.cpu_load_pct.append(int(load.rstrip("%")))
        freq = freq or shared_freq or ""
        sample.cpu_freq_mhz.append(int(freq) if freq.isdigit() else None)


def parse_tegrastats_line(line: str) -> TegraSample | None:
    """Parse one line; ``None`` when the line is not tegrastats output (no RAM field)."""
    ram = _RAM.search(line)
    if ram is None:
        return None
    s = TegraSample(ram_used_mb=int(ram.group(1)), ram_total_mb=int(ram.group(2)))
    if m := _TIMESTAMP.match(line):
        s.timestamp = m.group(1)
    if m := _SWAP.search(line):
        s.swap_used_mb, s.swap_total_mb = int(m.group(1)), int(m.group(2))
    if m := _CPU.search(line):
        _parse_cpu(s, m.group(1), m.group(2))
    if m := _GPU.search(line):
        s.gpu_load_pct = int(m.group(1))
        s.gpu_freq_mhz = [int(f) for f in (m.group(2) or "").split(",") if f]
    if m := _EMC.search(line):
        s.emc_load_pct = int(m.group(1))
        s.emc_freq_mhz = int(m.group(2)) if m.group(2) else None
    for name, value in _TEMP.findall(line):
        t = float(value)
        s.temperatures_c[name] = None if t <= ABSENT_SENSOR_C else t
    for name, cur, avg in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            s.rails_mw[name] = (int(cur), int(avg))
    return s


class TegrastatsMonitor:
    """Runs ``tegrastats --interval MS`` and keeps (perf_counter_ns, sample) pairs from a reader thread."""

    def __init__(self, interval_ms: int = 100, command: str = "tegrastats") -> None:
        self.interval_ms = interval_ms
        self.command = command
        self.samples: list[tuple[int, TegraSample]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @staticmethod
    def available(command: str = "tegrastats") -> tuple[bool, str]:
        if shutil.which(command) is None:
            return False, f"{command!r} not found on PATH (not a Jetson, or JetPack's tools are missing)"
        return True, ""

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [self.command, "--interval", str(self.interval_ms)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_tegrastats_line(line)
            if sample is not None:
                with self._lock:
                    self.samples.append((time.perf_counter_ns(), sample))

    def between(self, t0_ns: int, t1_ns: int) -> list[TegraSample]:
        with self._lock:
            return [s for t, s in self.samples if t0_ns <= t <= t1_ns]

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)


def summarize_samples(samples: list[TegraSample]) -> dict[str, Any]:
    """Mean input power, peak RAM, mean GPU load and last temperatures over a window."""
    powers = [p for p, _ in (s.input_power_mw() for s in samples) if p is not None]
    rule = samples[0].input_power_mw()[1] if samples else "no samples"
    gpu = [s.gpu_load_pct for s in samples if s.gpu_load_pct is not None]
    return {
        "samples": len(samples),
        "input_power_w": sum(powers) / len(powers) / 1000 if powers else None,
        "power_rule": rule,
        "ram_used_mb": max((s.ram_used_mb or 0) for s in samples) if samples else None,
        "gpu_load_pct_mean": sum(gpu) / len(gpu) if gpu else None,
        "gpu_freq_mhz": samples[-1].gpu_freq_mhz if samples else None,
        "temperatures_c": samples[-1].temperatures_c if samples else {},
    }
