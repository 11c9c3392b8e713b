"""``edgekd bench`` on a device fleet: devices in parallel, one cell at a time per device.

The scheduling rules are checked with stand-in targets (fast); the real thing runs against two
OpenSSH servers on 127.0.0.1 (two ports), one of which is killed mid-run and later restarted
for ``--resume --retry-failed``. Without sshd (CI installs it with tools/ci_sshd.sh) those skip.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # share helpers with the single-host remote test
from test_bench_remote import _free_port, _sshd  # noqa: E402

from edgekd.bench.fleet import FleetDevice, check_fleet, fleet_device, load_fleet, run_fleet  # noqa: E402
from edgekd.bench.process import WorkerOutcome  # noqa: E402
from edgekd.bench.remote import RemoteError  # noqa: E402
from edgekd.bench.runner import BenchOptions  # noqa: E402
from edgekd.errors import EdgekdError  # noqa: E402
from edgekd.results.store import latest_by_key, read_records  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAST = dict(duration_s=0.3, min_iters=5, warmup_max_s=0.3, e2e_s=0.2, paced_s=0.2, throughput_s=0.0)
SIZES = (32, 48, 64, 80)


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """Four ONNX Runtime artifacts of one tiny checkpoint (four input sizes): four cells per device."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_bench_run import export_tiny

    from edgekd.export import export_checkpoint

    root = tmp_path_factory.mktemp("fleet-art")
    export_tiny(root, "onnxruntime")  # writes the checkpoint (and a 32×32 artifact not used here)
    for size in SIZES:
        export_checkpoint(root / "tiny_student.safetensors", backends="onnxruntime", precisions="fp32",
                          out_dir=root / "fleet" / f"s{size}", input_size=(size, size), exporter="torchscript",
                          parity_images=0, force=True)
    return root / "fleet"


def ssh_profile(folder: Path, name: str, server: dict) -> Path:
    """This machine reached over one test sshd, as a profile named ``name`` (the file stem)."""
    data = yaml.safe_load((ROOT / "device_profiles" / "onnxruntime-cpu.yaml").read_text())
    data.update(name=name, description=f"this machine over ssh port {server['port']} (test)", hardware={"source": "test"},
                runtime={"threads": 1}, connection={
                    "type": "ssh", "host": server["user"], "port": server["port"], "python": sys.executable,
                    "workdir": str(folder / f"{name}-work"), "ssh_options": server["options"]})
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


# --- scheduling, with stand-in targets ---------------------------------------------------------


class CountingTarget:
    """A device that takes 0.2 s per cell and records how many of its cells overlap."""

    kind = "ssh"
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    overall_peak = [0]
    lock = threading.Lock()

    def __init__(self, device: FleetDevice, down: bool = False) -> None:
        self.name, self.down = device.name, down

    def describe(self) -> str:
        return f"ssh fake-{self.name}"

    def check(self) -> None:
        if self.down:
            raise RemoteError(f"cannot reach ssh fake-{self.name} over ssh: Connection refused")

    def prepare(self, artifact_dirs, data_dir) -> None: ...

    def map_path(self, path) -> str:
        return str(path)

    def run_worker(self, spec, timeout_s, on_stage=None) -> WorkerOutcome:
        with self.lock:
            self.active[self.name] = self.active.get(self.name, 0) + 1
            self.peak[self.name] = max(self.peak.get(self.name, 0), self.active[self.name])
            self.overall_peak[0] = max(self.overall_peak[0], sum(self.active.values()))
        time.sleep(0.2)
        with self.lock:
            self.active[self.name] -= 1
        return WorkerOutcome(result=None, returncode=1, stderr_tail="stand-in device: no runtime", timed_out=False, seconds=0.2)


def fake_devices(tmp_path: Path, names: list[str]) -> list[FleetDevice]:
    servers = [{"port": 2200 + i, "user": f"u@10.0.0.{i + 1}", "options": []} for i in range(len(names))]
    return [fleet_device(str(ssh_profile(tmp_path, n, s))) for n, s in zip(names, servers)]


def test_devices_run_in_parallel_one_cell_at_a_time_each(artifacts, tmp_path) -> None:
    devices = fake_devices(tmp_path, ["dev-a", "dev-b", "dev-c"])
    runs = run_fleet(devices, [artifacts], BenchOptions(**FAST), tmp_path / "res", run_id="r1",
                     make_target=lambda d: CountingTarget(d, down=d.name == "dev-c"))
    assert all(CountingTarget.peak[d] == 1 for d in ("dev-a", "dev-b")), CountingTarget.peak
    assert CountingTarget.overall_peak[0] == 2, "dev-a and dev-b ran at the same time"
    by_name = {r.device: r for r in runs}
    for name in ("dev-a", "dev-b"):  # each device's rows in its own file, under the fleet's run id
        rows = read_records(tmp_path / "res" / name / "r1.jsonl")[0]
        assert len(rows) == len(SIZES) and {r["device"]["name"] for r in rows} == {name}
    down = read_records(tmp_path / "res" / "dev-c" / "r1.jsonl")[0]
    assert len(down) == len(SIZES) and by_name["dev-c"].failed == len(SIZES) and not by_name["dev-c"].error
    assert all(r["status"] == "failed" and "device unreachable" in r["error"] and "Connection refused" in r["error"] for r in down)


def test_fleet_refuses_two_streams_on_one_device(tmp_path) -> None:
    (a,) = fake_devices(tmp_path, ["dev-a"])
    with pytest.raises(EdgekdError, match="listed device 'dev-a' twice|lists device 'dev-a' twice"):
        check_fleet([a, a])
    with pytest.raises(EdgekdError, match="both run on this machine"):
        check_fleet([fleet_device("onnxruntime-cpu"), fleet_device("onnxruntime-cpu", name="again")])
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"devices": [{"profile": "dev-a.yaml", "name": "a1"},
                                                 {"profile": "dev-a.yaml", "name": "a2", "port": 2200}]}))
    with pytest.raises(EdgekdError, match="'a1' and 'a2' both run on ssh u@10.0.0.1 2200"):
        check_fleet(load_fleet(fleet))
    fleet.write_text(yaml.safe_dump({"devices": [{"profile": "dev-a.yaml", "hots": "x"}]}))
    with pytest.raises(EdgekdError, match="unknown key\\(s\\) hots"):
        load_fleet(fleet)


# --- two real sshd on 127.0.0.1, one killed mid-run --------------------------------------------


def _start_sshd(binary: str, d: Path, port: int) -> subprocess.Popen:
    (d / "sshd_config").write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_ed25519'}", f"PidFile {d / 'sshd.pid'}",
        f"AuthorizedKeysFile {d / 'authorized_keys'}", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
        "LogLevel ERROR", "",
    ]))
    log = open(d / "sshd.log", "a")
    # Its own session: killing the group takes the server and every session it runs (a device going down).
    return subprocess.Popen([binary, "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_ready(server: dict, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while True:
        probe = subprocess.run(["ssh", "-p", str(server["port"]), "-o", "BatchMode=yes", *server["options"], server["user"], "true"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail(f"sshd on port {server['port']} never accepted the key: {probe.stderr.strip()}")
        time.sleep(0.2)


@pytest.fixture
def two_sshd(tmp_path):
    binary = _sshd()
    if binary is None:
        pytest.skip("OpenSSH server not installed (CI installs it with tools/ci_sshd.sh: openssh-server, rsync)")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)
    servers = []
    for name in ("a", "b"):
        d = tmp_path / f"sshd-{name}"
        d.mkdir()
        for key in ("host_ed25519", "id_ed25519"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / key)], check=True)
        shutil.copy(d / "id_ed25519.pub", d / "authorized_keys")
        port = _free_port()
        host_pub = (d / "host_ed25519.pub").read_text().split()
        (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        server = {"port": port, "dir": d, "binary": binary, "user": f"{getpass.getuser()}@127.0.0.1",
                  "options": ["-i", str(d / "id_ed25519"), "-o", f"UserKnownHostsFile={d / 'known_hosts'}",
                              "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes"]}
        server["proc"] = _start_sshd(binary, d, port)
        _wait_ready(server, server["proc"])
        servers.append(server)
    yield servers
    for s in servers:
        if s["proc"].poll() is None:
            os.killpg(s["proc"].pid, signal.SIGTERM)
            s["proc"].wait(timeout=10)


def _bench(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgekd", "bench", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # ~50 s: two sshd, 4 cells per host, a resume
def test_two_ssh_hosts_one_killed_mid_run_then_resumed(two_sshd, artifacts, tmp_path) -> None:
    a, b = two_sshd
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"devices": [
        {"profile": str(ssh_profile(tmp_path, "ssh-a", a))},
        {"profile": str(ssh_profile(tmp_path, "ssh-b", b))},
    ]}))
    budgets = ["--duration", "0.3", "--min-iters", "5", "--warmup-max", "0.3", "--e2e", "0.2", "--throughput", "0"]
    out = tmp_path / "results"
    run = _bench(["--fleet", str(fleet), str(artifacts), "--out", str(out), "--run-id", "fleet1", *budgets], tmp_path)
    b_rows = out / "ssh-b" / "fleet1.jsonl"
    deadline = time.monotonic() + 240
    while not (b_rows.is_file() and b_rows.read_text().count("\n") >= 1):  # ssh-b has finished its first cell
        assert run.poll() is None and time.monotonic() < deadline, run.communicate()[0] if run.poll() is not None else "timeout"
        time.sleep(0.05)
    os.killpg(b["proc"].pid, signal.SIGKILL)  # ssh-b goes down: server and sessions
    b["proc"].wait(timeout=10)
    output = run.communicate(timeout=300)[0]
    print("\n$ edgekd bench --fleet fleet.yaml ARTIFACTS --run-id fleet1 ... (ssh-b killed after its first row)\n" + output)
    assert run.returncode == 1, output  # failed rows → exit 1
    rows_a = latest_by_key(read_records(out / "ssh-a" / "fleet1.jsonl")[0])
    rows_b = latest_by_key(read_records(b_rows)[0])
    assert len(rows_a) == len(SIZES) and all(r["status"] == "ok" for r in rows_a.values()), output
    assert len(rows_b) == len(SIZES), "every ssh-b cell has a row, run or failed"
    failed_b = [r for r in rows_b.values() if r["status"] == "failed"]
    assert failed_b and all("Connection refused" in r["error"] or "exit" in r["error"] for r in failed_b), output
    assert any(r["status"] == "ok" for r in rows_b.values())

    b["proc"] = _start_sshd(b["binary"], b["dir"], b["port"])  # the device is back
    _wait_ready(b, b["proc"])
    again = _bench(["--fleet", str(fleet), str(artifacts), "--out", str(out), "--resume", "--retry-failed", *budgets], tmp_path)
    output2 = again.communicate(timeout=300)[0]
    print("$ edgekd bench --fleet fleet.yaml ARTIFACTS --resume --retry-failed ...\n" + output2)
    assert again.returncode == 0, output2
    assert f"ssh-a: 0 cell(s) written to {out / 'ssh-a' / 'fleet1.jsonl'}, {len(SIZES)} already recorded" in output2
    assert f"ssh-b: {len(failed_b)} cell(s) written" in output2
    rows_b = latest_by_key(read_records(b_rows)[0])
    assert all(r["status"] == "ok" for r in rows_b.values())
    assert len(read_records(out / "ssh-a" / "fleet1.jsonl")[0]) == len(SIZES)  # nothing re-run on ssh-a
