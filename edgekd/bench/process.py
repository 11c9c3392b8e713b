"""Run one worker process (locally or through ssh) and collect its result line.

The worker gets its spec on stdin and answers with one ``EDGEKD_RESULT {json}`` line on stdout;
``EDGEKD_STAGE`` lines on stderr feed the live display. A worker that outlives its time budget is
killed with its whole process group (start_new_session), and the outcome says it timed out.
"""
from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgekd.bench.cellspec import CellSpec
from edgekd.bench.worker import RESULT_MARKER

STAGE_MARKER = "EDGEKD_STAGE "
REPO_ROOT = Path(__file__).resolve().parents[2]
OnStage = Callable[[str], None]


@dataclass
class WorkerOutcome:
    result: dict[str, Any] | None
    returncode: int | None
    stderr_tail: str
    timed_out: bool
    seconds: float

    def failure(self, timeout_s: float) -> str | None:
        """Why no usable result came back, or None when one did."""
        if self.timed_out:
            return f"worker timed out after {timeout_s:.0f} s and was killed (raise --cell-timeout for slow models)"
        if self.result is None:
            tail = self.stderr_tail.strip().splitlines()[-8:]
            return f"worker exited with code {self.returncode} and no result line: " + " | ".join(tail)
        return None


def _read_stdout(stream, found: list[dict[str, Any]]) -> None:
    for line in stream:
        if line.startswith(RESULT_MARKER):
            try:
                found.append(json.loads(line[len(RESULT_MARKER):]))
            except json.JSONDecodeError:
                pass


def _read_stderr(stream, tail: collections.deque, on_stage: OnStage | None) -> None:
    for line in stream:
        if line.startswith(STAGE_MARKER):
            if on_stage is not None:
                on_stage(line[len(STAGE_MARKER):].strip())
        else:
            tail.append(line.rstrip("\n"))


def run_worker_process(cmd: list[str], spec: CellSpec, timeout_s: float, *, on_stage: OnStage | None = None,
                       env: dict[str, str] | None = None) -> WorkerOutcome:
    """Start ``cmd``, send ``spec``, wait at most ``timeout_s``; never raises for the worker's own failures."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    found: list[dict[str, Any]] = []
    tail: collections.deque = collections.deque(maxlen=60)
    readers = [threading.Thread(target=_read_stdout, args=(proc.stdout, found), daemon=True),
               threading.Thread(target=_read_stderr, args=(proc.stderr, tail, on_stage), daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.stdin.write(spec.to_json())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    timed_out = False
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    except BaseException:  # Ctrl-C in the runner: the worker runs in its own session, so end it too
        _kill_group(proc)
        raise
    for t in readers:
        t.join(timeout=5)
    return WorkerOutcome(found[-1] if found else None, proc.returncode, "\n".join(tail), timed_out, time.perf_counter() - t0)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


class LocalTarget:
    """Cells run on this machine, each in a fresh ``python -m edgekd.bench.worker`` of this interpreter."""

    kind = "local"

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable

    def describe(self) -> str:
        return "local"

    def check(self) -> None:
        return None

    def prepare(self, artifact_dirs: list[Path], data_dir: Path | None) -> None:
        return None

    def map_path(self, path: Path) -> str:
        return str(Path(path).resolve())

    def run_worker(self, spec: CellSpec, timeout_s: float, on_stage: OnStage | None = None) -> WorkerOutcome:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env["PYTHONUNBUFFERED"] = "1"
        cmd = [self.python, "-m", "edgekd.bench.worker", "--timeout", str(int(timeout_s) + 5)]
        return run_worker_process(cmd, spec, timeout_s, on_stage=on_stage, env=env)
