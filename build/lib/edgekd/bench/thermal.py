"""Temperatures from Linux thermal zones (``/sys/class/thermal/thermal_zone*/{type,temp}``).

A sustained run records them per window, next to the FPS, so throttling is seen with its cause.
Zones that cannot be read (permission, a sensor that is powered down) are skipped; when none can
be read the result carries the reason instead of numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

THERMAL_ROOT = Path("/sys/class/thermal")


def read_thermal_zones(root: Path = THERMAL_ROOT) -> dict[str, Any]:
    """``{"temperatures_c": {type: °C}}`` or ``{"temperatures_c": None, "reason": ...}``."""
    if not root.is_dir():
        return {"temperatures_c": None, "reason": f"no {root} (no thermal zones exposed: VM or container)"}
    temps: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*"), key=lambda p: int(p.name[len("thermal_zone"):] or 0)):
        try:
            kind = (zone / "type").read_text().strip() or zone.name
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        name = kind if kind not in temps else f"{kind}.{zone.name}"
        temps[name] = milli / 1000.0
    if not temps:
        return {"temperatures_c": None, "reason": f"no readable thermal zone under {root}"}
    return {"temperatures_c": temps}


def hottest(reading: dict[str, Any]) -> float | None:
    temps = reading.get("temperatures_c") or {}
    return max(temps.values()) if temps else None
