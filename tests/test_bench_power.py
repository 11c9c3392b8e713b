"""Energy and temperature readers: tegrastats on real lines, RAPL and thermal zones on fake sysfs trees."""
from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from edgekd.bench import power
from edgekd.bench.power import RaplMeter, RaplReader, TegrastatsMeter, make_energy_meter, wrapped_delta
from edgekd.bench.tegrastats import parse_tegrastats_line, summarize_samples
from edgekd.bench.thermal import hottest, read_thermal_zones

DATA = Path(__file__).parent / "data" / "tegrastats"


def lines(name: str) -> list[str]:
    return [ln for ln in (DATA / name).read_text().splitlines() if ln.strip()]


def test_orin_nano_line() -> None:
    s = parse_tegrastats_line(lines("orin_nano.txt")[0])
    assert s.timestamp == "11-15-2024 08:38:09"
    assert (s.ram_used_mb, s.ram_total_mb, s.swap_used_mb, s.swap_total_mb) == (6185, 7620, 851, 3810)
    assert s.cpu_load_pct == [15, 11, 14, 13, 11, 8] and s.cpu_freq_mhz == [729] * 6
    assert (s.gpu_load_pct, s.gpu_freq_mhz, s.emc_load_pct, s.emc_freq_mhz) == (63, [621], 43, 2133)
    assert s.temperatures_c["tj"] == pytest.approx(53.968) and s.temperatures_c["gpu"] == pytest.approx(53.343)
    assert s.rails_mw == {"VDD_IN": (12479, 12479), "VDD_CPU_GPU_CV": (4667, 4667), "VDD_SOC": (2817, 2817)}
    assert s.input_power_mw() == (12479.0, "VDD_IN")
    idle = parse_tegrastats_line(lines("orin_nano.txt")[1])
    assert idle.gpu_load_pct == 0 and idle.gpu_freq_mhz == [] and idle.input_power_mw()[0] == 4824.0


def test_agx_orin_line_sums_rails_and_drops_absent_sensors() -> None:
    s = parse_tegrastats_line(lines("agx_orin.txt")[0])
    assert len(s.cpu_load_pct) == 12 and s.gpu_freq_mhz == [0, 0]
    assert s.temperatures_c["CV0"] is None and s.temperatures_c["GPU"] is None  # -256C = sensor absent
    assert s.temperatures_c["tj"] == pytest.approx(44.343)
    assert "NC" not in s.rails_mw and "RAM" not in s.rails_mw
    watts, rule = s.input_power_mw()
    assert watts == 2340 + 390 + 4025 + 301 and rule.startswith("sum of rails")


def test_jetpack4_formats_without_units() -> None:
    tx2 = parse_tegrastats_line(lines("tx2.txt")[0])
    assert tx2.swap_used_mb is None and tx2.input_power_mw() == (3140.0, "VDD_IN")
    assert tx2.rails_mw["VDD_SYS_GPU"] == (153, 158) and tx2.temperatures_c["PMIC"] == 100.0
    tx2b = parse_tegrastats_line(lines("tx2.txt")[1])
    assert tx2b.gpu_freq_mhz == [114] and tx2b.input_power_mw()[0] == 5297.0
    xavier = parse_tegrastats_line(lines("agx_xavier.txt")[0])
    assert set(xavier.rails_mw) == {"GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"}
    assert xavier.input_power_mw()[0] == 463 + 618 + 2936 + 0 + 309 + 3306
    nano = parse_tegrastats_line(lines("nano.txt")[0])
    assert nano.input_power_mw() == (4520.0, "POM_5V_IN") and "IRAM" not in nano.rails_mw
    assert nano.gpu_freq_mhz == [76] and nano.emc_freq_mhz == 1600


def test_off_cores_old_tx1_format_and_lines_without_rails() -> None:
    no_rails = parse_tegrastats_line(lines("tx2_4gb_no_rails.txt")[0])
    assert no_rails.cpu_load_pct == [3, None, None, 0, 1, 1] and no_rails.cpu_freq_mhz[1] is None
    watts, reason = no_rails.input_power_mw()
    assert watts is None and "no power rails" in reason
    tx1 = parse_tegrastats_line(lines("tx1.txt")[1])
    assert tx1.cpu_load_pct == [17, 11, 65, 0] and tx1.cpu_freq_mhz == [1734] * 4
    assert (tx1.gpu_load_pct, tx1.gpu_freq_mhz, tx1.emc_load_pct, tx1.emc_freq_mhz) == (39, [76], 1, 1600)
    assert parse_tegrastats_line("tegrastats: command not found") is None


def test_summary_of_a_window() -> None:
    samples = [parse_tegrastats_line(ln) for ln in lines("orin_nano.txt")]
    s = summarize_samples(samples)
    assert s["samples"] == 2 and s["input_power_w"] == pytest.approx((12479 + 4824) / 2 / 1000)
    assert s["ram_used_mb"] == 6185 and s["gpu_load_pct_mean"] == pytest.approx(31.5)


def test_tegrastats_monitor_reads_a_streaming_process(tmp_path: Path, monkeypatch) -> None:
    """The monitor's subprocess plumbing, fed real lines by a stand-in executable on PATH."""
    script = tmp_path / "tegrastats"
    script.write_text(f"#!/bin/sh\nwhile true; do cat {DATA / 'orin_nano.txt'}; sleep 0.02; done\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    meter = make_energy_meter(rapl=False, tegrastats=True, tegrastats_interval_ms=20)
    assert isinstance(meter, TegrastatsMeter)
    try:
        meter.begin()
        time.sleep(0.3)
        out = meter.end(frames=30)
    finally:
        meter.close()
    assert out["source"] == "tegrastats" and out["tegrastats"]["samples"] >= 2
    assert 4.8 <= out["avg_power_w"] <= 12.5
    assert out["energy_per_frame_mj"] == pytest.approx(out["joules"] / 30 * 1000)
    assert meter.monitor._proc.poll() is not None  # the tegrastats process was stopped


def _rapl_tree(root: Path, energy: dict[str, int], max_range: int = 262143328850) -> None:
    for zone, (name, value) in {"intel-rapl:0": ("package-0", energy["package-0"]),
                                "intel-rapl:0:0": ("core", 123), "intel-rapl:1": ("psys", energy["psys"])}.items():
        d = root / zone
        d.mkdir(parents=True, exist_ok=True)
        (d / "name").write_text(name + "\n")
        (d / "energy_uj").write_text(f"{value}\n")
        (d / "max_energy_range_uj").write_text(f"{max_range}\n")


def test_rapl_wraparound_and_package_scope(tmp_path: Path) -> None:
    assert wrapped_delta(100, 350, 1000) == 250
    assert wrapped_delta(900, 50, 1000) == 150
    _rapl_tree(tmp_path, {"package-0": 262143328000, "psys": 10})
    reader = RaplReader(tmp_path)
    assert [d.name for d in reader.domains()] == ["package-0", "psys"]  # the core sub-zone is part of its package
    assert reader.status() == (True, "")
    meter = make_energy_meter(rapl=True, tegrastats=False, powercap_root=tmp_path)
    assert isinstance(meter, RaplMeter)
    meter.begin()
    _rapl_tree(tmp_path, {"package-0": 2_000_000 - 850, "psys": 5_000_010})  # package counter wrapped
    out = meter.end(frames=10)
    assert out["domains_j"]["package-0"] == pytest.approx(2.0)  # 850 uJ before the wrap + 1999150 after
    assert out["joules"] == pytest.approx(out["domains_j"]["package-0"])  # packages only, psys listed apart
    assert out["energy_per_frame_mj"] == pytest.approx(out["joules"] / 10 * 1000)
    assert out["scope"].startswith("CPU package")


def test_rapl_reasons(tmp_path: Path, monkeypatch) -> None:
    ok, reason = RaplReader(tmp_path / "missing").status()
    assert not ok and "no RAPL" in reason
    _rapl_tree(tmp_path, {"package-0": 1, "psys": 1})
    real_read = Path.read_text

    def deny(self: Path, *a, **kw):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", deny)
    meter = make_energy_meter(rapl=True, tegrastats=False, powercap_root=tmp_path)
    out = meter.end(5)
    assert out["energy_per_frame_mj"] is None and "root only" in out["reason"] and "chmod" in out["reason"]


def test_no_sensor_gives_a_reason() -> None:
    out = make_energy_meter(rapl=False, tegrastats=False).end(3)
    assert out["energy_per_frame_mj"] is None and "no power sensor" in out["reason"]
    if not Path("/usr/bin/tegrastats").exists():
        out = make_energy_meter(rapl=False, tegrastats=True).end(3)
        assert "tegrastats" in out["reason"]


def test_thermal_zones(tmp_path: Path) -> None:
    assert read_thermal_zones(tmp_path / "none")["temperatures_c"] is None
    for i, (kind, milli) in enumerate([("x86_pkg_temp", 45000), ("acpitz", 38500), ("acpitz", 40000)]):
        d = tmp_path / f"thermal_zone{i}"
        d.mkdir()
        (d / "type").write_text(kind)
        (d / "temp").write_text(str(milli))
    (tmp_path / "thermal_zone9").mkdir()  # unreadable zone: skipped
    reading = read_thermal_zones(tmp_path)
    assert reading["temperatures_c"] == {"x86_pkg_temp": 45.0, "acpitz": 38.5, "acpitz.thermal_zone2": 40.0}
    assert hottest(reading) == 45.0
    assert power.POWERCAP_ROOT == Path("/sys/class/powercap")


def test_cpu_clocks_and_host_facts(tmp_path: Path) -> None:
    from edgekd.core.host import cpu_clocks, host_facts

    assert cpu_clocks(tmp_path)["cpu_mhz"] is None and "cpufreq" in cpu_clocks(tmp_path)["reason"]
    for i, (khz, gov) in enumerate([(1_500_000, "schedutil"), (729_600, "schedutil")]):
        d = tmp_path / f"cpu{i}" / "cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_cur_freq").write_text(f"{khz}\n")
        (d / "scaling_governor").write_text(gov + "\n")
    assert cpu_clocks(tmp_path) == {"cpu_mhz": {"cpu0": 1500, "cpu1": 729}, "governor": ["schedutil"]}
    facts = host_facts()
    assert facts["cores_logical"] == os.cpu_count() and facts["cpu"] and facts["os"]
    assert facts["power"]["power_mode"] is not None or facts["power"]["reason"]
