"""Device profiles: every shipped profile validates; bad ones fail naming the key and the file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from edgekd.backends.registry import get_backend
from edgekd.profiles import (
    KNOWN_BACKENDS, ProfileError, list_profiles, load_profile, load_profile_file, profile_dirs, profile_hash,
    runtime_options_for,
)

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "device_profiles").glob("*.yaml"))
REQUIRED_NAMES = {"jetson-orin-nano", "jetson-orin-nx", "jetson-agx-orin", "intel-x86-cpu", "iphone-15-pro",
                  "onnxruntime-cpu", "host"}


def test_the_required_profiles_ship() -> None:
    assert REQUIRED_NAMES <= {p.stem for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_profile_loads(path: Path) -> None:
    p = load_profile_file(path)
    assert p.name == path.stem and p.description
    assert p.backend in KNOWN_BACKENDS and p.precisions
    assert p.real_time.target_fps > 0 and p.real_time.latency_budget_ms > 0 and p.real_time.memory_budget_mb > 0
    assert p.camera.width >= p.input_size[1] and p.camera.height >= p.input_size[0]
    assert p.hardware.source, "hardware figures must say where they come from"
    assert len(p.sha256) == 64
    if p.connection.type == "ssh":
        assert p.connection.python and p.connection.workdir
    exportable = {prec for b in p.accepted_backends for prec in get_backend(b).precisions}
    runtime_only = {"bf16"} if "openvino" in p.accepted_backends else set()
    assert set(p.precisions) <= exportable | runtime_only, "a profile lists only precisions its backends can export"


def test_a_precision_the_backend_cannot_export_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad-prec", lambda d: d.update(backend="coreml", precisions=["fp16", "int8"], runtime={}))
    with pytest.raises(ProfileError, match=r"bad-prec\.yaml: precisions lists 'int8', which coreml cannot export"):
        load_profile(str(path))


def test_host_profile_detects_this_machine() -> None:
    host = load_profile("host")
    assert host.hardware.cores == os.cpu_count()
    assert isinstance(host.hardware.cpu, str) and host.hardware.cpu not in ("", "detect")
    assert host.hardware.memory_gb and host.hardware.memory_gb > 0.1
    assert set(KNOWN_BACKENDS) == set(host.accepted_backends)


def test_jetson_orin_alias_is_the_nano() -> None:
    assert load_profile("jetson-orin").name == "jetson-orin-nano"


def test_unknown_profile_suggests_the_nearest() -> None:
    with pytest.raises(ProfileError, match="Did you mean 'jetson-orin-nx'"):
        load_profile("jetson-orin-mx")


def _write(tmp_path: Path, name: str, mutate) -> Path:
    data = yaml.safe_load((profile_dirs()[-1] / "onnxruntime-cpu.yaml").read_text())
    data["name"] = name
    mutate(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_top_level_key_names_key_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad-top", lambda d: d.update(fps=30))
    with pytest.raises(ProfileError, match=r"bad-top\.yaml.*unknown key 'fps'"):
        load_profile(str(path))


def test_unknown_nested_key_names_its_section(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad-nested", lambda d: d["real_time"].update(fps=30))
    with pytest.raises(ProfileError, match=r"bad-nested\.yaml: real_time: unknown key 'fps'"):
        load_profile_file(path)


def test_wrong_type_and_bad_value_are_named(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"real_time: target_fps must be float, found 'thirty'"):
        load_profile_file(_write(tmp_path, "bad-type", lambda d: d["real_time"].update(target_fps="thirty")))
    with pytest.raises(ProfileError, match=r"backend = 'tensorflow' is not allowed"):
        load_profile_file(_write(tmp_path, "bad-backend", lambda d: d.update(backend="tensorflow")))
    with pytest.raises(ProfileError, match=r"missing key 'real_time'"):
        load_profile_file(_write(tmp_path, "no-budget", lambda d: d.pop("real_time")))
    with pytest.raises(ProfileError, match=r"name = 'other' is not allowed"):
        path = _write(tmp_path, "renamed", lambda d: None)
        path.write_text(path.read_text().replace("name: renamed", "name: other"))
        load_profile_file(path)


def test_profile_hash_follows_content_not_formatting() -> None:
    a = {"name": "x", "real_time": {"target_fps": 30, "latency_budget_ms": 20}}
    b = {"real_time": {"latency_budget_ms": 20, "target_fps": 30}, "name": "x"}
    assert profile_hash(a) == profile_hash(b)
    assert profile_hash(a) != profile_hash({**a, "name": "y"})


@pytest.mark.parametrize("profile", list_profiles(), ids=lambda p: p.name)
def test_runtime_options_are_ones_the_backends_accept(profile) -> None:
    """The mapping from profile options to load() keywords must match what each backend declares."""
    for backend in profile.accepted_backends:
        options = runtime_options_for(profile, backend)
        get_backend(backend).check_runtime_options(options)


def test_overrides_keep_the_profile_frozen() -> None:
    host = load_profile("host")
    remote = host.with_host("me@10.0.0.2").with_threads(4)
    assert remote.connection.type == "ssh" and remote.connection.host == "me@10.0.0.2" and remote.runtime.threads == 4
    assert host.connection.type == "local" and host.runtime.threads == 2
    with pytest.raises(Exception):
        host.name = "x"  # frozen


def test_a_wheel_install_finds_the_profiles_under_its_prefix(tmp_path, monkeypatch) -> None:
    """pyproject ships device_profiles/*.yaml as data files to <prefix>/share/edgekd/device_profiles."""
    import sys

    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["data-files"] == {"share/edgekd/device_profiles": ["device_profiles/*.yaml"]}
    shared = tmp_path / "share" / "edgekd" / "device_profiles"
    shared.mkdir(parents=True)
    (shared / "wheel-only.yaml").write_text(SHIPPED[0].read_text().replace(f"name: {SHIPPED[0].stem}", "name: wheel-only"))
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert profile_dirs()[-1] == shared
    assert load_profile("wheel-only").name == "wheel-only"
