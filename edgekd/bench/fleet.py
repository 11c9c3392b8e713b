"""A device fleet in one bench run: the matrix on every device at once, one worker stream per device.

Each device gets one thread that calls ``run_bench`` for that device alone, so its cells run one
after another (never two at once on a device, which would corrupt both timings) while the devices
run in parallel. Rows stream into each device's own file, ``OUT/<device>/<run-id>.jsonl``, under
one run id shared by the fleet; ``--resume`` resolves each device's run separately.

A device that goes down mid-run fails its remaining cells one by one (the runner records each
with the ssh error); a device that cannot be reached or prepared at all has every pending cell
written as ``failed`` with the reason. Either way the other devices go on, and
``--resume --retry-failed`` later runs just the missing cells.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import yaml

from edgekd.bench.plan import Cell, discover_artifacts, plan_cells
from edgekd.bench.process import LocalTarget, WorkerOutcome
from edgekd.bench.remote import RemoteError
from edgekd.bench.runner import BenchOptions, RunSummary, assemble, edgekd_block, run_bench
from edgekd.errors import EdgekdError
from edgekd.profiles import DeviceProfile, load_profile
from edgekd.results.store import ResultStore, completed_keys, new_run_id, resolve_resume, run_path

FLEET_KEYS = {"profile", "name", "host", "port", "serial", "threads"}


@dataclass(frozen=True)
class FleetDevice:
    """One device of the fleet: its profile (named as its results folder) and, for adb, the phone's serial."""

    profile: DeviceProfile
    serial: str | None = None

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass
class DeviceRun:
    """What one device's stream did: its run summary, or the error that stopped it before any cell."""

    device: str
    summary: RunSummary | None = None
    error: str | None = None

    @property
    def failed(self) -> int:
        return sum(r["status"] == "failed" for r in self.summary.written) if self.summary else 0


def fleet_device(profile_ref: str, *, name: str | None = None, host: str | None = None, port: int | None = None,
                 serial: str | None = None, threads: int | None = None) -> FleetDevice:
    """A profile (zoo name or YAML path) with a fleet entry's overrides applied."""
    profile = load_profile(profile_ref)
    if host:
        profile = profile.with_host(host)
    if port is not None:
        if not isinstance(port, int) or not 0 < port < 65536:
            raise EdgekdError(f"fleet device {profile_ref!r}: port {port!r} is not a TCP port (1-65535)")
        profile = replace(profile, connection=replace(profile.connection, port=port))
    if threads is not None:
        if not isinstance(threads, int) or threads < 1:
            raise EdgekdError(f"fleet device {profile_ref!r}: threads {threads!r} must be a positive integer")
        profile = profile.with_threads(threads)
    if name:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
            raise EdgekdError(f"fleet device name {name!r}: use letters, digits, '.', '_' and '-' only (it names a results folder)")
        profile = replace(profile, name=str(name))
    return FleetDevice(profile, serial)


def load_fleet(path: str | Path) -> list[FleetDevice]:
    """``devices:`` entries of a fleet YAML: ``{profile: NAME|PATH, name:, host:, port:, serial:, threads:}``."""
    path = Path(path)
    if not path.is_file():
        raise EdgekdError(f"--fleet {path}: no such file; write a YAML with a 'devices:' list (see docs/bench.md)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise EdgekdError(f"--fleet {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    entries = data.get("devices") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise EdgekdError(f"--fleet {path}: needs a non-empty 'devices:' list of {{profile: NAME, host: user@addr}} entries")
    devices = []
    for i, entry in enumerate(entries):
        entry = {"profile": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or "profile" not in entry:
            raise EdgekdError(f"--fleet {path}: device {i + 1} needs a 'profile:' (a profile name or YAML path)")
        unknown = sorted(set(entry) - FLEET_KEYS)
        if unknown:
            raise EdgekdError(f"--fleet {path}: device {i + 1} has unknown key(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(sorted(FLEET_KEYS))}")
        ref = str(entry["profile"])
        if not Path(ref).is_absolute() and (path.parent / ref).is_file():
            ref = str(path.parent / ref)  # profile files beside the fleet file
        devices.append(fleet_device(ref, **{k: v for k, v in entry.items() if k != "profile"}))
    return devices


def check_fleet(devices: list[FleetDevice]) -> None:
    """Distinct result folders and distinct machines: two streams on one device would time each other."""
    seen_names: dict[str, int] = {}
    seen_places: dict[tuple, str] = {}
    for device in devices:
        if device.name in seen_names:
            raise EdgekdError(f"fleet lists device {device.name!r} twice; give each entry its own 'name:' "
                              "(it names the device's results folder)")
        seen_names[device.name] = 1
        place = _place(device)
        if place in seen_places:
            where = "this machine" if place == ("local",) else " ".join(str(p) for p in place if p)
            raise EdgekdError(f"fleet devices {seen_places[place]!r} and {device.name!r} both run on {where}: their cells "
                              "would run at the same time on one device; keep one of them")
        seen_places[place] = device.name


def _place(device: FleetDevice) -> tuple:
    conn = device.profile.connection
    if conn.type == "ssh":
        return ("ssh", conn.host, conn.port or 22)
    if conn.type == "adb":
        return ("adb", device.serial or conn.serial)
    return ("local",)


def default_target(device: FleetDevice) -> Any:
    """The target a profile's connection names (this machine, ssh or adb)."""
    conn = device.profile.connection
    if conn.type == "ssh":
        from edgekd.bench.remote import SshTarget

        return SshTarget(conn)
    if conn.type == "adb":
        from edgekd.bench.adb import AdbTarget

        return AdbTarget(conn, serial=device.serial)
    return LocalTarget()


def run_fleet(devices: list[FleetDevice], artifact_paths: list[str | Path], opts: BenchOptions, out_dir: str | Path, *,
              resume: bool = False, run_id: str | None = None, make_target: Callable[[FleetDevice], Any] = default_target,
              make_reporter: Callable[[FleetDevice], Any] | None = None) -> list[DeviceRun]:
    """Benchmark ``artifact_paths`` on every device in parallel; one ``DeviceRun`` per device, in fleet order."""
    check_fleet(devices)
    if not resume:
        run_id = run_id or new_run_id()  # one id for the fleet: OUT/<device>/<run-id>.jsonl on every device
    runs = [DeviceRun(d.name) for d in devices]
    threads = [threading.Thread(target=_device_stream, name=f"bench-{d.name}", daemon=True,
                                args=(d, run, artifact_paths, opts, Path(out_dir), resume, run_id, make_target, make_reporter))
               for d, run in zip(devices, runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return runs


def _device_stream(device, run, artifact_paths, opts, out_dir, resume, run_id, make_target, make_reporter) -> None:
    """One device's cells, in order; an unreachable device's pending cells become ``failed`` rows."""
    reporter = make_reporter(device) if make_reporter else None
    target = None
    try:
        target = make_target(device)
        run.summary = run_bench(device.profile, artifact_paths, opts, out_dir, resume=resume, run_id=run_id,
                                target=target, reporter=reporter)
    except RemoteError as err:
        try:
            run.summary = record_unreachable(device, target, artifact_paths, opts, out_dir, resume, run_id, str(err))
            if reporter is not None:
                reporter.finish(run.summary.written)
        except EdgekdError as inner:
            run.error = str(inner)
    except EdgekdError as err:
        run.error = str(err)
    except Exception as err:  # one device's harness bug must not take the fleet down; the CLI reports it
        run.error = f"{type(err).__name__}: {err}"


def record_unreachable(device: FleetDevice, target: Any, artifact_paths, opts: BenchOptions, out_dir: Path,
                       resume: bool, run_id: str | None, reason: str) -> RunSummary:
    """Write every pending cell of ``device`` as ``failed`` with ``reason`` (the device could not be used)."""
    profile = device.profile
    cells: list[Cell] = plan_cells(profile, discover_artifacts(list(artifact_paths)))[0]
    rid = resolve_resume(out_dir, profile.name, run_id) if resume else run_id
    store = ResultStore(run_path(out_dir, profile.name, rid))
    previous, _ = store.read()
    done = completed_keys(previous, opts.retry_failed) if resume else set()
    summary = RunSummary(rid, store.path, skipped_done=sum(c.key in done for c in cells))
    target = target if target is not None else _Unreached(profile)
    edgekd = edgekd_block()
    for cell in (c for c in cells if c.key not in done):
        outcome = WorkerOutcome(result=None, returncode=None, stderr_tail=reason, timed_out=False, seconds=0.0)
        record = assemble(rid, cell, profile, target, outcome, opts.timeout_s(), None, opts, edgekd)
        record["error"] = f"device unreachable, cell not run: {reason}"
        store.append(record)
        summary.written.append(record)
    return summary


class _Unreached:
    """Stands in for a target that could not even be built, so a failed row can name the device."""

    def __init__(self, profile: DeviceProfile) -> None:
        self.kind = profile.connection.type
        self.address = profile.connection.host or profile.name

    def describe(self) -> str:
        return f"{self.kind} {self.address}"
