"""``edgekd bench`` over a real ssh connection: an OpenSSH server started by the test on 127.0.0.1.

The server listens on a free port with a host key and a user key generated here; the "device" is
this machine reached through it, with this venv's python. CI installs the server with
tools/ci_sshd.sh; without sshd the tests skip and say so.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from edgekd.bench.remote import RemoteError, SshTarget
from edgekd.bench.runner import BenchOptions, run_bench
from edgekd.cli import main
from edgekd.profiles import load_profile_file
from edgekd.results.schema import validate_record
from edgekd.results.store import read_records

FAST = dict(duration_s=0.3, min_iters=5, warmup_max_s=0.3, e2e_s=0.2, paced_s=0.2, throughput_s=0.2)


def _sshd() -> str | None:
    found = shutil.which("sshd") or ("/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None)
    return found if found and shutil.which("ssh") and shutil.which("ssh-keygen") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    binary = _sshd()
    if binary is None:
        pytest.skip("OpenSSH server not installed (CI installs it with tools/ci_sshd.sh: openssh-server, rsync)")
    d = tmp_path_factory.mktemp("sshd")
    for key in ("host_ed25519", "id_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
    shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
    (d / "authorized_keys").chmod(0o600)
    port = _free_port()
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_ed25519'}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
        "LogLevel ERROR", "Subsystem sftp internal-sftp", "",
    ]))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir sshd wants when started as root
    check = subprocess.run([binary, "-t", "-f", str(d / "sshd_config")], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.skip(f"sshd cannot run here: {check.stderr.strip()}")
    log = open(d / "sshd.log", "w")
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT)
    host_pub = (d / "host_ed25519.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    options = ["-i", str(d / "id_ed25519"), "-o", f"UserKnownHostsFile={d / 'known_hosts'}",
               "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes"]
    user = f"{getpass.getuser()}@127.0.0.1"
    deadline = time.monotonic() + 15
    while True:
        probe = subprocess.run(["ssh", "-p", str(port), "-o", "BatchMode=yes", *options, user, "true"], capture_output=True, text=True)
        if probe.returncode == 0:
            break
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.terminate()
            pytest.fail(f"sshd on port {port} never accepted the key: {probe.stderr.strip()} / {(d / 'sshd.log').read_text()}")
        time.sleep(0.2)
    yield {"port": port, "options": options, "user": user, "dir": d}
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


def ssh_profile(tmp_path: Path, sshd: dict, *, port: int | None = None, workdir: Path | None = None) -> Path:
    """A profile of this machine reached over the test's sshd (name must match the file stem)."""
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "device_profiles" / "onnxruntime-cpu.yaml").read_text())
    data.update(name="ssh-loopback", description="this machine over ssh on 127.0.0.1 (test)", hardware={"source": "test"},
                runtime={"threads": 1}, connection={
                    "type": "ssh", "host": sshd["user"], "port": port or sshd["port"], "python": sys.executable,
                    "workdir": str(workdir or tmp_path / "remote work's dir"), "ssh_options": sshd["options"]})
    path = tmp_path / "ssh-loopback.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def ort_artifact(tmp_path_factory) -> Path:
    sys.path.insert(0, str(Path(__file__).parent))  # share the exporter with test_bench_run under any import mode
    from test_bench_run import export_tiny

    (art,) = export_tiny(tmp_path_factory.mktemp("remote-art"), "onnxruntime")
    return art


def test_bench_over_ssh_pushes_runs_and_streams_rows_back(sshd, ort_artifact, tmp_path) -> None:
    profile = load_profile_file(ssh_profile(tmp_path, sshd))
    target = SshTarget(profile.connection)
    summary = run_bench(profile, [ort_artifact], BenchOptions(**FAST), tmp_path / "results", target=target)
    (row,) = read_records(summary.path)[0]
    validate_record(row)
    assert row["status"] == "ok", row["error"]
    assert row["device"]["connection"] == {"type": "ssh", "address": f"ssh {sshd['user']}:{sshd['port']}"}
    assert row["latency_ms"]["p50"] > 0 and row["backend"]["name"] == "onnxruntime" and row["host"]["cpu"]
    assert summary.path.parent == tmp_path / "results" / "ssh-loopback"  # rows land locally
    workdir = tmp_path / "remote work's dir"  # a space and a quote: remote command lines are quoted
    assert (workdir / "src" / "edgekd" / "bench" / "worker.py").is_file()
    pushed = list((workdir / "artifacts").glob("*-onnxruntime-fp32/model.onnx"))
    assert len(pushed) == 1 and target.map_path(ort_artifact) == str(pushed[0].parent)


def test_cli_runs_a_profile_with_ssh_connection(sshd, ort_artifact, tmp_path, capsys) -> None:
    path = ssh_profile(tmp_path, sshd)
    out = tmp_path / "res"
    args = ["bench", "--device", str(path), str(ort_artifact), "--out", str(out), "--duration", "0.3", "--min-iters", "5",
            "--warmup-max", "0.3", "--e2e", "0.2", "--throughput", "0"]
    assert main(args) == 0
    assert "1 cell(s) written" in capsys.readouterr().out
    assert main(args + ["--resume"]) == 0  # everything recorded: nothing pushed or run again
    (run_file,) = (out / "ssh-loopback").glob("*.jsonl")
    assert len(run_file.read_text().splitlines()) == 1


def test_unreachable_host_is_a_clear_error(sshd, ort_artifact, tmp_path, capsys) -> None:
    closed = _free_port()
    profile = load_profile_file(ssh_profile(tmp_path, sshd, port=closed))
    with pytest.raises(RemoteError, match=rf"cannot reach ssh {sshd['user']}:{closed} over ssh: .*refused"):
        run_bench(profile, [ort_artifact], BenchOptions(**FAST), tmp_path / "res", target=SshTarget(profile.connection))
    assert main(["bench", "--device", str(ssh_profile(tmp_path, sshd, port=closed)), str(ort_artifact),
                 "--out", str(tmp_path / "res2")]) == 2
    assert "cannot reach" in capsys.readouterr().err


def test_missing_remote_python_is_named(sshd, tmp_path) -> None:
    profile = load_profile_file(ssh_profile(tmp_path, sshd))
    from dataclasses import replace

    target = SshTarget(replace(profile.connection, python="/nonexistent/python3"))
    with pytest.raises(RemoteError, match="python '/nonexistent/python3' cannot run the worker"):
        target.check()
