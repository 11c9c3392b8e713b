"""Device profiles: one YAML per device in ``device_profiles/``, validated into frozen objects.

A profile says what an AR device runs (preferred backend, precisions, runtime options), what the
pipeline feeds it (model input size, camera resolution), the real-time budget a candidate must
meet, public hardware facts for roofline figures (with their source), how to reach the device
(this machine, or ssh) and which power/thermal sensors it has. Unknown keys are errors that name
the key and the file; the profile hash (sha256 of the canonical content) goes into every result
row so a changed budget or option never mixes silently with old rows.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union

import yaml

from edgekd.backends.registry import list_backends
from edgekd.errors import EdgekdError, yaml_error_text
from edgekd.core.suggest import did_you_mean

PROFILE_DIR_ENV = "EDGEKD_PROFILE_DIR"
KNOWN_BACKENDS = tuple(list_backends())  # the registry is the one list of backends
CONNECTION_TYPES = ("local", "ssh", "adb")
KNOWN_PRECISIONS = ("fp32", "fp16", "bf16", "int8")
OPENVINO_HINTS = ("latency", "throughput", "cumulative_throughput")
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")
COREML_COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
DETECT = "detect"


class ProfileError(EdgekdError):
    """A profile that is missing, unknown or invalid; the message names the file, key and fix."""


@dataclass(frozen=True)
class RuntimeOptions:
    """Options handed to the backend's session; ``None`` means the runtime's own default."""

    threads: int | None = None
    openvino_hint: str | None = None
    openvino_inference_precision: str | None = None
    tensorrt_workspace_mb: int | None = None
    tensorrt_dla_core: int | None = None
    coreml_compute_units: str | None = None
    denormals_as_zero: bool = False


@dataclass(frozen=True)
class Camera:
    """The frames the AR pipeline gets before any resizing."""

    width: int
    height: int
    fps: float


@dataclass(frozen=True)
class RealTime:
    """The budget a candidate must meet on this device (the segmentation share of a frame)."""

    target_fps: float
    latency_budget_ms: float
    memory_budget_mb: float


@dataclass(frozen=True)
class Hardware:
    """Public facts for roofline figures; ``source`` says where each number comes from."""

    source: str
    cpu: str | None = None
    cores: int | None = None
    accelerator: str | None = None
    memory_gb: float | None = None
    memory_bandwidth_gbs: float | None = None
    peak_fp32_tflops: float | None = None
    peak_fp16_tflops: float | None = None
    peak_bf16_tflops: float | None = None
    peak_int8_tops: float | None = None
    tdp_w: float | None = None


@dataclass(frozen=True)
class Connection:
    """``local`` runs cells on this machine; ``ssh`` pushes artifacts and runs them on ``host``;
    ``adb`` pushes the model file to an Android phone (``serial``) and runs the runtime's own
    benchmark binary there (``litert_benchmark``, ``executorch_runner``: paths on the device)."""

    type: str = "local"
    host: str | None = None
    port: int | None = None
    python: str = "python3"
    workdir: str = "~/edgekd-bench"
    ssh_options: tuple[str, ...] = ()
    serial: str | None = None
    adb: str = "adb"
    litert_benchmark: str = "/data/local/tmp/benchmark_model"
    executorch_runner: str = "/data/local/tmp/executor_runner"


@dataclass(frozen=True)
class Sensors:
    tegrastats: bool = False
    tegrastats_interval_ms: int = 100
    rapl: bool = False
    thermal_zones: bool = True


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    backend: str
    precisions: tuple[str, ...]
    input_size: tuple[int, int]
    camera: Camera
    real_time: RealTime
    hardware: Hardware
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    backends: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    connection: Connection = field(default_factory=Connection)
    sensors: Sensors = field(default_factory=Sensors)
    path: str = ""
    sha256: str = ""

    @property
    def accepted_backends(self) -> tuple[str, ...]:
        """The backends whose artifacts this device benchmarks (the preferred one first)."""
        return (self.backend,) + tuple(b for b in self.backends if b != self.backend)

    def with_host(self, host: str) -> "DeviceProfile":
        """The same profile reached over ssh at ``host`` (``--host user@addr``)."""
        check_ssh_host(host, "--host")
        return replace(self, connection=replace(self.connection, type="ssh", host=host))

    def with_threads(self, threads: int) -> "DeviceProfile":
        return replace(self, runtime=replace(self.runtime, threads=threads))


_FILE_ONLY = {"path", "sha256"}

# ssh -o options a shared profile may set: none of them runs a command or opens a tunnel
# (ProxyCommand, LocalCommand, KnownHostsCommand, ProxyJump, forwards, Include, Match exec... are refused).
SSH_SAFE_OPTIONS = (
    "AddressFamily", "BatchMode", "CheckHostIP", "Ciphers", "Compression", "ConnectionAttempts", "ConnectTimeout",
    "HostKeyAlgorithms", "HostKeyAlias", "HostName", "IdentitiesOnly", "IdentityFile", "IPQoS", "KexAlgorithms",
    "LogLevel", "MACs", "NumberOfPasswordPrompts", "PasswordAuthentication", "Port", "PreferredAuthentications",
    "PubkeyAuthentication", "ServerAliveCountMax", "ServerAliveInterval", "StrictHostKeyChecking", "TCPKeepAlive",
    "User", "UserKnownHostsFile",
)
_SSH_FLAGS = {"-4", "-6", "-C", "-q", "-v", "-vv", "-vvv"}  # flags without a value
_SSH_VALUE_FLAGS = {"-p": "Port", "-i": "IdentityFile", "-l": "User"}  # flags whose value is the next item


def check_ssh_host(host: str, where: str) -> None:
    """A destination ssh cannot read as an option (``-V``, ``-oProxyCommand=...``) or as several words."""
    if not host or host.startswith("-") or any(c.isspace() or ord(c) < 32 for c in host):
        raise ProfileError(f"{where} {host!r} is not an ssh destination: it must be user@host or host, not start with "
                           "'-' (ssh would read it as an option) nor hold spaces or control characters")


def check_ssh_options(options: tuple[str, ...] | list[str], where: str) -> None:
    """Allow only ssh options that cannot run code: ``-oName=value`` / ``-o Name=value`` for a name in
    ``SSH_SAFE_OPTIONS``, ``-p PORT``, ``-i FILE``, ``-l USER`` and the flags -4 -6 -C -q -v."""
    items = list(options)
    i = 0
    while i < len(items):
        item = str(items[i])
        if item in _SSH_FLAGS:
            i += 1
            continue
        if item in _SSH_VALUE_FLAGS or item == "-o":
            if i + 1 >= len(items):
                raise ProfileError(f"{where}: {item!r} needs a value after it")
            value = str(items[i + 1])
            if item != "-o":
                if value.startswith("-"):
                    raise ProfileError(f"{where}: {item} {value!r}: the value may not start with '-'")
                i += 2
                continue
            _check_ssh_option(value, where)
            i += 2
            continue
        if item.startswith("-o") and len(item) > 2:
            _check_ssh_option(item[2:], where)
            i += 1
            continue
        raise ProfileError(f"{where}: {item!r} is not allowed; use -oName=value with a name among "
                           f"{', '.join(SSH_SAFE_OPTIONS)}, or -p PORT, -i FILE, -l USER")
    return None


def _check_ssh_option(text: str, where: str) -> None:
    name = text.strip().replace("=", " ", 1).split(" ", 1)[0]
    canonical = {o.lower(): o for o in SSH_SAFE_OPTIONS}.get(name.lower())
    if canonical is None:
        raise ProfileError(f"{where}: ssh option {name!r} is refused: a shared profile may not set options that run "
                           f"commands or open tunnels (ProxyCommand, LocalCommand, ...); allowed: {', '.join(SSH_SAFE_OPTIONS)}")


def profile_dirs() -> list[Path]:
    """Where profiles are looked up: ``$EDGEKD_PROFILE_DIR``, the repository's ``device_profiles/``
    (source checkouts and editable installs), then ``<prefix>/share/edgekd/device_profiles`` (wheels)."""
    dirs = []
    if os.environ.get(PROFILE_DIR_ENV):
        dirs.append(Path(os.environ[PROFILE_DIR_ENV]).expanduser())
    dirs.append(Path(__file__).resolve().parent.parent / "device_profiles")
    dirs.append(Path(sys.prefix) / "share" / "edgekd" / "device_profiles")
    return [d for d in dirs if d.is_dir()]


def _profile_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in reversed(profile_dirs()):  # earlier dirs override later ones
        for p in sorted(d.glob("*.yaml")):
            found[p.stem] = p
    return found


def list_profiles() -> list[DeviceProfile]:
    """Every profile found, loaded and validated (an invalid file raises)."""
    return [load_profile_file(p) for p in _profile_files().values()]


def load_profile(name_or_path: str) -> DeviceProfile:
    """A profile by name, alias, or path to a YAML file; an unknown name suggests the nearest."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return load_profile_file(candidate)
    files = _profile_files()
    if name_or_path in files:
        return load_profile_file(files[name_or_path])
    aliases = {a: p for p in (load_profile_file(f) for f in files.values()) for a in p.aliases}
    if name_or_path in aliases:
        return aliases[name_or_path]
    known = sorted(set(files) | set(aliases))
    hint = did_you_mean(name_or_path, known, cutoff=0.3)
    raise ProfileError(
        f"unknown device profile {name_or_path!r}.{hint} Known: {', '.join(known) or '(none)'}; "
        f"or pass a path to a profile YAML (profile dirs: {', '.join(map(str, profile_dirs())) or 'none found'})"
    )


def load_profile_file(path: str | os.PathLike) -> DeviceProfile:
    """Read, validate and freeze one profile file; hardware values ``detect`` are filled from this machine."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ProfileError(f"profile {yaml_error_text(path, err)}; fix the file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(f"cannot read profile {path}: {err}") from err
    if not isinstance(raw, dict):
        raise ProfileError(f"profile {path} must be a YAML mapping, found {type(raw).__name__}")
    digest = profile_hash(raw)
    data = dict(raw)
    if isinstance(data.get("hardware"), dict):
        data["hardware"] = _fill_detected(data["hardware"], path)
    profile = _build(DeviceProfile, data, f"{path}", exclude=_FILE_ONLY)
    profile = replace(profile, path=str(path), sha256=digest)
    _check_values(profile, path)
    return profile


def profile_hash(raw: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the file's content (key order and formatting do not matter)."""
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _fill_detected(hardware: dict[str, Any], path: Path) -> dict[str, Any]:
    from edgekd.core.host import detect_hardware

    wanted = [k for k, v in hardware.items() if v == DETECT]
    if not wanted:
        return hardware
    facts = detect_hardware(wanted)
    unknown = [k for k in wanted if k not in facts]
    if unknown:
        raise ProfileError(f"{path}: hardware.{unknown[0]} cannot be 'detect'; detectable: {', '.join(sorted(facts))}")
    return {**hardware, **{k: facts[k] for k in wanted}}


def _build(cls, data: Any, where: str, exclude: set[str] = frozenset()):
    """Build dataclass ``cls`` from a mapping: unknown keys and wrong types raise, naming the key."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where} must be a mapping, found {type(data).__name__} ({data!r})")
    hints = typing.get_type_hints(cls)
    allowed = {f.name for f in fields(cls)} - exclude
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(allowed))}")
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING} - exclude
    missing = sorted(required - set(data))
    if missing:
        raise ProfileError(f"{where}: missing key {missing[0]!r} (required: {', '.join(sorted(required))})")
    kwargs = {k: _coerce(v, hints[k], f"{where}: {k}") for k, v in data.items()}
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _coerce(value, inner[0], where)
    if is_dataclass(tp):
        return _build(tp, value, where)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise ProfileError(f"{where} must be a list, found {value!r}")
        return tuple(_coerce(v, item_type, where) for v in value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ProfileError(f"{where} must be {getattr(tp, '__name__', tp)}, found {value!r}")


def _check_precisions_exportable(p: DeviceProfile, path: Path) -> None:
    """A profile lists only precisions one of its backends can run: exported ones, plus those a runtime
    runs an artifact in (``Backend.runtime_precisions``: bf16 where OpenVINO runs); a listed precision
    that export refuses would send the user to a command that fails."""
    from edgekd.backends.registry import get_backend

    supported = {prec for b in p.accepted_backends for prec in (*get_backend(b).precisions, *get_backend(b).runtime_precisions)}
    for prec in p.precisions:
        if prec in KNOWN_PRECISIONS and prec not in supported:
            raise ProfileError(f"{path}: precisions lists {prec!r}, which {' / '.join(p.accepted_backends)} cannot export; "
                               f"use {' | '.join(sorted(supported))}")


def _check_values(p: DeviceProfile, path: Path) -> None:
    def bad(key: str, value: Any, allowed: str) -> ProfileError:
        return ProfileError(f"{path}: {key} = {value!r} is not allowed; use {allowed}")

    for b in p.accepted_backends:
        if b not in KNOWN_BACKENDS:
            raise bad("backend" if b == p.backend else "backends", b, " | ".join(KNOWN_BACKENDS))
    for prec in p.precisions:
        if prec not in KNOWN_PRECISIONS:
            raise bad("precisions", prec, " | ".join(KNOWN_PRECISIONS))
    _check_precisions_exportable(p, path)
    if len(p.input_size) != 2 or min(p.input_size) <= 0:
        raise bad("input_size", list(p.input_size), "[H, W] with positive values")
    if p.runtime.openvino_hint is not None and p.runtime.openvino_hint not in OPENVINO_HINTS:
        raise bad("runtime.openvino_hint", p.runtime.openvino_hint, " | ".join(OPENVINO_HINTS))
    if p.runtime.openvino_inference_precision not in (None, *OPENVINO_PRECISIONS):
        raise bad("runtime.openvino_inference_precision", p.runtime.openvino_inference_precision,
                  " | ".join(OPENVINO_PRECISIONS) + " or null (the device default)")
    if p.runtime.coreml_compute_units is not None and p.runtime.coreml_compute_units not in COREML_COMPUTE_UNITS:
        raise bad("runtime.coreml_compute_units", p.runtime.coreml_compute_units, " | ".join(COREML_COMPUTE_UNITS))
    if p.runtime.threads is not None and p.runtime.threads < 1:
        raise bad("runtime.threads", p.runtime.threads, "a positive count or null for the runtime default")
    rt = p.real_time
    for key in ("target_fps", "latency_budget_ms", "memory_budget_mb"):
        if getattr(rt, key) <= 0:
            raise bad(f"real_time.{key}", getattr(rt, key), "a positive number")
    if p.connection.type not in CONNECTION_TYPES:
        raise bad("connection.type", p.connection.type, " | ".join(CONNECTION_TYPES))
    if p.connection.type == "adb" and not p.connection.workdir.startswith("/"):
        raise bad("connection.workdir", p.connection.workdir, "an absolute path on the phone, e.g. /data/local/tmp/edgekd")
    if p.connection.host is not None:
        check_ssh_host(p.connection.host, f"{path}: connection.host")
    check_ssh_options(p.connection.ssh_options, f"{path}: connection.ssh_options")
    if p.name != path.stem:
        raise bad("name", p.name, f"the file's stem {path.stem!r} (one profile per file, named after it)")


def runtime_options_for(profile: DeviceProfile, backend: str) -> dict[str, Any]:
    """The profile's runtime options that concern ``backend``, named as that backend's ``load()`` takes them.

    Each backend owns the mapping (``Backend.options_from_profile``): backends refuse unknown
    options (never ignoring them silently), so only options a backend declares are passed.
    """
    from edgekd.backends.registry import UnknownBackendError, get_backend

    try:
        found = get_backend(backend)
    except UnknownBackendError:
        return {}  # a name no backend has gets no options (its load fails with the valid names)
    return found.options_from_profile(profile.runtime)
