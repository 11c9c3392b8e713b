"""Remote devices over ssh: push the edgekd sources and artifacts, run the worker there, stream results back.

Every remote command line is built from ``shlex.quote``-d parts, paths are made absolute on the
device first (``$HOME`` is asked for once, so no ``~`` is ever left inside quotes), and ssh runs
with ``BatchMode=yes`` so a missing key fails at once instead of waiting for a password. Files go
with rsync when both ends have it (incremental, so re-runs push nothing new), else with scp.
The edgekd sources are pushed too, so the device needs only Python, numpy, OpenCV and the runtime.
"""
from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
from pathlib import Path

from edgekd.bench.cellspec import CellSpec
from edgekd.bench.process import REPO_ROOT, OnStage, WorkerOutcome, run_worker_process
from edgekd.errors import EdgekdError
from edgekd.profiles import Connection, check_ssh_host, check_ssh_options


class RemoteError(EdgekdError):
    """The device cannot be reached or prepared; the message names the host and the fix."""


class SshTarget:
    """Cells run on ``host`` with the profile's python, under its work dir."""

    kind = "ssh"

    def __init__(self, connection: Connection, host: str | None = None, connect_timeout_s: int = 10) -> None:
        self.host = host or connection.host
        if not self.host:
            raise RemoteError("this profile connects over ssh but names no host; pass --host user@addr "
                              "(or set connection.host in the profile)")
        check_ssh_host(self.host, "ssh host")  # also checked when the profile is read; this target may be built in code
        check_ssh_options(connection.ssh_options, "connection.ssh_options")
        self.connection = connection
        self.connect_timeout_s = connect_timeout_s
        self.ssh_cmd = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={connect_timeout_s}",
                        "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if connection.port:
            self.ssh_cmd += ["-p", str(connection.port)]
        self.ssh_cmd += list(connection.ssh_options)
        self.workdir = ""
        self.paths: dict[str, str] = {}
        self._remote_rsync = False

    def describe(self) -> str:
        port = f":{self.connection.port}" if self.connection.port else ""
        return f"ssh {self.host}{port}"

    def _ssh(self, remote_command: str, timeout_s: float, stdin: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self.ssh_cmd + ["--", self.host, remote_command], input=stdin, capture_output=True,
                                  text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as err:
            raise RemoteError(f"{self.describe()}: no answer within {timeout_s:.0f} s running {remote_command!r}; "
                              "is the device up and reachable?") from err
        except FileNotFoundError as err:
            raise RemoteError("the ssh client is not installed here; install openssh-client") from err

    def _checked(self, remote_command: str, what: str, timeout_s: float = 60) -> str:
        out = self._ssh(remote_command, timeout_s)
        if out.returncode == 255:
            last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RemoteError(f"cannot reach {self.describe()} over ssh: {last}. Check the address and port, that sshd "
                              f"runs there and that key login works: {shlex.join(self.ssh_cmd + ['--', self.host, 'true'])}")
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or out.stdout.strip().splitlines() or ["(no message)"])[-1]
            raise RemoteError(f"{self.describe()}: {what} failed (exit {out.returncode}): {last}")
        return out.stdout

    def check(self) -> None:
        """Reach the host, resolve the work dir and check the remote Python has what the worker needs."""
        home = self._checked('printf %s "$HOME"', "reading $HOME", timeout_s=self.connect_timeout_s + 20).strip()
        wd = self.connection.workdir
        self.workdir = f"{home}/{wd[2:]}" if wd.startswith("~/") else (home if wd == "~" else wd)
        python = shlex.quote(self.connection.python)
        probe = f"{python} -c {shlex.quote('import numpy, cv2, sys; print(sys.version.split()[0])')}"
        out = self._ssh(probe, 60)
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RemoteError(f"{self.describe()}: python {self.connection.python!r} cannot run the worker ({last}); set "
                              "connection.python in the profile to a Python with numpy and opencv-python (and the runtime)")
        self._remote_rsync = self._ssh("command -v rsync", 30).returncode == 0
        self._checked(f"mkdir -p {shlex.quote(self.workdir)}", "creating the work dir")

    def _push(self, local: Path, remote: str) -> None:
        self._checked(f"mkdir -p {shlex.quote(str(Path(remote).parent))}", "creating " + remote)
        if self._remote_rsync and shutil.which("rsync"):
            cmd = ["rsync", "-a", "--delete", "--exclude", "__pycache__", "-e", shlex.join(self.ssh_cmd),
                   f"{local}/", f"{self.host}:{remote}/"]
        else:
            scp = ["scp", "-q", "-r", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}"]
            scp += (["-P", str(self.connection.port)] if self.connection.port else []) + list(self.connection.ssh_options)
            self._checked(f"rm -rf {shlex.quote(remote)}", "clearing " + remote)
            cmd = scp + ["--", str(local), f"{self.host}:{remote}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise RemoteError(f"pushing {local} to {self.describe()}:{remote} failed ({cmd[0]} exit {out.returncode}): {last}")

    def prepare(self, artifact_dirs: list[Path], data_dir: Path | None) -> None:
        """Push the edgekd package, every artifact and the dataset (if any) under the work dir."""
        if not self.workdir:
            self.check()
        self._push(REPO_ROOT / "edgekd", f"{self.workdir}/src/edgekd")
        for kind, dirs in (("artifacts", artifact_dirs), ("data", [data_dir] if data_dir else [])):
            for local in (Path(d).resolve() for d in dirs):
                tag = hashlib.sha256(str(local).encode()).hexdigest()[:10]
                remote = f"{self.workdir}/{kind}/{tag}-{local.name}"
                self._push(local, remote)
                self.paths[str(local)] = remote

    def map_path(self, path: Path) -> str:
        local = str(Path(path).resolve())
        if local not in self.paths:
            raise RemoteError(f"{local} was not pushed to {self.describe()} (a harness bug: prepare() first)")
        return self.paths[local]

    def run_worker(self, spec: CellSpec, timeout_s: float, on_stage: OnStage | None = None) -> WorkerOutcome:
        src = shlex.quote(f"{self.workdir}/src")
        remote = (f"cd {shlex.quote(self.workdir)} && PYTHONPATH={src} PYTHONUNBUFFERED=1 "
                  f"exec {shlex.quote(self.connection.python)} -m edgekd.bench.worker --timeout {int(timeout_s) + 5}")
        return run_worker_process(self.ssh_cmd + ["--", self.host, remote], spec, timeout_s + self.connect_timeout_s, on_stage=on_stage)
