"""Android phones over ``adb``: push the artifact, run the runtime's own benchmark binary, pull its result.

A phone has no Python to run edgekd's worker, so a cell on an ``adb`` profile runs the runtime's
own tool on the device: LiteRT's ``benchmark_model`` for a ``.tflite`` and ExecuTorch's
``executor_runner`` (built with XNNPACK) for a ``.pte``. Both binaries come from the runtime's
release or build for arm64-v8a and are pushed once by the user to the paths the profile names.
Each cell is ``adb -s SERIAL push`` (artifact) → ``adb -s SERIAL shell`` (the tool, its output
redirected to a file on the device) → ``adb -s SERIAL pull`` (that file) → the tool's result line
parsed here. Without adb or a device, every cell is an ``unavailable`` row with the reason: no
figure is ever made up.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from edgekd.bench.cellspec import CellSpec
from edgekd.bench.process import OnStage, WorkerOutcome
from edgekd.errors import EdgekdError
from edgekd.profiles import Connection

TOOLS = {"litert": ("model.tflite", "litert_benchmark"), "executorch": ("model.pte", "executorch_runner")}
# LiteRT benchmark_model: "Inference timings in us: Init: 5388, First inference: 101726, Warmup (avg): 92755.2, Inference (avg): 90865.9"
_LITERT_TIMINGS = re.compile(r"Inference timings in us:\s*Init:\s*([\d.eE+-]+),\s*First inference:\s*([\d.eE+-]+),"
                             r"\s*Warmup \(avg\):\s*([\d.eE+-]+),\s*Inference \(avg\):\s*([\d.eE+-]+)")
# its per-phase statistics line, the last one being the timed runs: "count=20 first=31500 curr=30900 min=30718 max=36410 avg=31118.1 std=1323"
_LITERT_STATS = re.compile(r"count=(\d+) first=([\d.]+) curr=([\d.]+) min=([\d.]+) max=([\d.]+) avg=([\d.]+) std=([\d.]+)")
# only the sampled peak counts as peak memory (the "Memory footprint delta ... overall=" figure is a delta)
_LITERT_PEAK = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*([\d.]+)")
# ExecuTorch executor_runner: "Model executed successfully 50 time(s) in 4620.312000 ms."
_EXECUTORCH_RUN = re.compile(r"Model executed successfully (\d+) time\(s\) in ([\d.]+) ms")


class AdbError(EdgekdError):
    """A device tool's output without its result line; the message quotes the tool's last line."""


def _latency(n: int, mean: float, lo: float | None = None, hi: float | None = None, std: float | None = None) -> dict[str, Any]:
    """A latency block from a device tool's summary: it reports no percentiles, so they stay None (never guessed)."""
    return {"n": n, "min": lo, "p50": None, "p90": None, "p99": None, "max": hi, "mean": mean, "std": std,
            "cv": (std / mean) if std is not None and mean else None, "source": "device tool summary (mean/min/max/std only)"}


def parse_litert(text: str) -> dict[str, Any]:
    """The figures of a ``benchmark_model`` run (microseconds in its output, milliseconds here)."""
    m = _LITERT_TIMINGS.search(text)
    if not m:
        raise AdbError(f"benchmark_model printed no 'Inference timings in us' line; its last line: {_last(text)!r}")
    init, first, _warmup, mean = (float(v) / 1000 for v in m.groups())
    stats = _LITERT_STATS.findall(text)
    if stats:
        n, _first, _curr, lo, hi, _avg, std = stats[-1]
        latency = _latency(int(n), mean, float(lo) / 1000, float(hi) / 1000, float(std) / 1000)
    else:
        latency = _latency(0, mean)
    peak = _LITERT_PEAK.findall(text)
    return {"latency_ms": latency, "first_inference_ms": first, "load_s": init / 1000,
            "peak_memory_mb": float(peak[-1]) if peak else None, "fps_sync": 1000.0 / mean if mean else None}


def parse_executorch(text: str) -> dict[str, Any]:
    """The figures of an ``executor_runner --num_executions N`` run: total time over N runs."""
    m = _EXECUTORCH_RUN.search(text)
    if not m:
        raise AdbError(f"executor_runner printed no 'Model executed successfully N time(s) in X ms' line; its last line: {_last(text)!r}")
    n, total = int(m.group(1)), float(m.group(2))
    mean = total / n
    return {"latency_ms": _latency(n, mean), "first_inference_ms": None, "load_s": None, "peak_memory_mb": None,
            "fps_sync": 1000.0 / mean if mean else None}


def _last(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "(no output)"


def tool_command(backend: str, connection: Connection, model_path: str, threads: int | None, runs: int, warmup: int) -> str:
    """The device-side command line for one cell (quoted for ``adb shell``)."""
    if backend == "litert":
        args = [connection.litert_benchmark, f"--graph={model_path}", "--use_xnnpack=true", f"--num_runs={runs}",
                f"--warmup_runs={warmup}", "--report_peak_memory_footprint=true"]
        if threads:
            args.append(f"--num_threads={threads}")
    elif backend == "executorch":
        args = [connection.executorch_runner, f"--model_path={model_path}", f"--num_executions={runs}"]
    else:
        raise EdgekdError(f"an adb device runs litert or executorch artifacts, not {backend!r}; export --backend litert,executorch")
    return shlex.join(args)


class AdbTarget:
    """Cells run on the phone ``serial`` (or the only one attached) with the runtime's own benchmark tool."""

    kind = "adb"

    def __init__(self, connection: Connection, serial: str | None = None, timeout_s: float = 30) -> None:
        self.connection = connection
        self.serial = serial or connection.serial
        self.timeout_s = timeout_s
        self.unavailable: str | None = None
        self.paths: dict[str, str] = {}

    def describe(self) -> str:
        return f"adb -s {self.serial}" if self.serial else "adb (the one attached device)"

    def _adb(self, *args: str, timeout_s: float | None = None) -> subprocess.CompletedProcess:
        cmd = [self.connection.adb] + (["-s", self.serial] if self.serial else []) + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s or self.timeout_s, check=False)

    def _checked(self, *args: str, what: str, timeout_s: float | None = None) -> str:
        try:
            out = self._adb(*args, timeout_s=timeout_s)
        except FileNotFoundError:
            raise AdbError(f"{self.connection.adb!r} is not installed here; install Android platform-tools "
                           "(apt-get install adb) and plug in the phone with USB debugging on") from None
        except subprocess.TimeoutExpired:
            raise AdbError(f"{self.describe()}: no answer within {timeout_s or self.timeout_s:.0f} s while {what}") from None
        if out.returncode != 0:
            raise AdbError(f"{self.describe()}: {what} failed (exit {out.returncode}): {_last(out.stderr or out.stdout)}")
        return out.stdout

    def check(self) -> None:
        """Find adb and the device; never raises: a missing one makes every cell ``unavailable`` with the reason."""
        try:
            state = self._checked("get-state", what="asking the device state").strip()
            if state != "device":
                raise AdbError(f"{self.describe()} is in state {state!r}, not 'device'; unlock it and accept USB debugging")
            self._checked("shell", f"mkdir -p {shlex.quote(self.connection.workdir)}", what="creating the work dir")
        except AdbError as err:
            self.unavailable = f"no Android device reachable: {err}"

    def prepare(self, artifact_dirs: list[Path], data_dir: Path | None) -> None:
        """Push each artifact's model file (``adb push``); data stays here (the device tools take no dataset)."""
        for local in (Path(d).resolve() for d in artifact_dirs):
            remote = f"{self.connection.workdir}/{local.parent.name}-{local.name}"
            self.paths[str(local)] = remote
            if self.unavailable:
                continue
            try:
                self._checked("shell", f"mkdir -p {shlex.quote(remote)}", what=f"creating {remote}")
                for name, _ in TOOLS.values():
                    if (local / name).is_file():
                        self._checked("push", str(local / name), f"{remote}/{name}", what=f"pushing {name}", timeout_s=300)
            except AdbError as err:
                self.unavailable = str(err)

    def map_path(self, path: Path) -> str:
        return self.paths.get(str(Path(path).resolve()), str(path))

    def run_worker(self, spec: CellSpec, timeout_s: float, on_stage: OnStage | None = None) -> WorkerOutcome:
        """Run one cell with the device tool; an unreachable device or missing tool is an ``unavailable`` row."""
        backend = spec.backend or ""
        host = {"connection": "adb", "serial": self.serial}
        if self.unavailable:
            return WorkerOutcome({"status": "unavailable", "error": self.unavailable, "host": host}, 0, "", False, 0.0)
        try:
            result = self._run_tool(spec, backend, timeout_s, on_stage)
        except AdbError as err:
            return WorkerOutcome({"status": "unavailable", "error": str(err), "host": host}, 0, "", False, 0.0)
        return WorkerOutcome({"status": "ok", "error": None, "host": host, **result}, 0, "", False, 0.0)

    def _run_tool(self, spec: CellSpec, backend: str, timeout_s: float, on_stage: OnStage | None) -> dict[str, Any]:
        if backend not in TOOLS:
            raise AdbError(f"{backend!r} artifacts do not run on an Android device here; export litert or executorch")
        model_file, _ = TOOLS[backend]
        remote_dir = spec.artifact_dir
        runs = max(spec.timing.min_iters, 1)
        threads = spec.runtime_options.get("threads")
        command = tool_command(backend, self.connection, f"{remote_dir}/{model_file}", threads, runs, warmup=10)
        log = f"{remote_dir}/result.txt"
        if on_stage:
            on_stage(f"running {backend} tool on {self.describe()}")
        self._checked("shell", f"{command} > {shlex.quote(log)} 2>&1", what=f"running {command}", timeout_s=timeout_s)
        with tempfile.TemporaryDirectory(prefix="edgekd-adb-") as tmp:
            self._checked("pull", log, f"{tmp}/result.txt", what="pulling the result file")
            text = Path(tmp, "result.txt").read_text(errors="replace")
        figures = parse_litert(text) if backend == "litert" else parse_executorch(text)
        return {**figures, "backend": {"name": backend, "tool": command.split()[0], "command": command,
                                       "threads": threads, "precision_used": None},
                "accuracy": {"miou": None, "reason": "the device benchmark tool runs on synthetic input; accuracy is measured on host"}}
