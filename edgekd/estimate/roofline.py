"""Roofline latency estimates for devices not at hand — a different kind of figure than a measurement.

Per layer, time = max(FLOPs / peak, bytes / bandwidth) with the profile's public peak for the
precision and its memory bandwidth; the layer times are summed (batch 1, one stream, no overlap
between layers) and divided by an efficiency factor: the share of the roofline a real runtime
reaches on such small, memory-heavy networks. The factor's source is always stated: a fit
against measured latency on this machine (``tools/validate_estimates.py``, stored in
``edgekd.estimate.calibration``), a value the user gives, or — for a device without any
measurement — the host's fitted value borrowed and labelled as such. Estimates never enter
``bench_results/``: ``Estimate.kind`` is always ``"estimate"``.

Two figures sit beside the estimate, and only one of them is a bound:

- ``roofline_ms``: the per-layer roofline at efficiency 1, the figure the efficiency factor
  divides. It is *not* a hard bound: its memory term assumes every byte crosses DRAM, and a CPU
  whose caches hold a small network's activations runs faster than that — the host's fitted
  factors are above 1 (1.08 ONNX Runtime, 1.10 OpenVINO, ``calibration.py``).
- ``bound_ms``: FLOPs ÷ peak, the compute term alone. No runtime does the graph's arithmetic
  faster than the hardware's peak, so the estimate is clamped to it (``at_bound`` says when),
  the only clamp: a factor above 1 applied to a compute-bound graph used to print an estimate
  below this "hard" figure. (Counted as direct convolution; a Winograd kernel does fewer
  multiplies, and a profile's peak is a public figure, so it is a bound on this model of the
  hardware, not on physics.)

"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekd.errors import EdgekdError
from edgekd.estimate.onnx_cost import GraphCost, graph_cost

PEAK_KEYS = {"fp32": "peak_fp32_tflops", "fp16": "peak_fp16_tflops", "bf16": "peak_bf16_tflops", "int8": "peak_int8_tops"}
BYTES_PER_ELEMENT = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "int8": 1.0}
TOP_LAYERS = 10


@dataclass(frozen=True)
class LayerEstimate:
    name: str
    op_type: str
    flops: int
    bytes: float
    ms: float
    bound: str  # "compute" | "memory"


@dataclass
class Estimate:
    """A roofline estimate with its basis; ``kind`` is always ``"estimate"`` (never a measurement)."""

    device: str
    backend: str
    precision: str
    latency_ms: float
    bound_ms: float  # FLOPs / peak: the estimate is never below it
    efficiency: float
    efficiency_source: str
    flops: int
    bytes: float
    compute_bound_layers: int
    memory_bound_layers: int
    basis: dict[str, Any]
    top_layers: list[LayerEstimate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    roofline_ms: float = 0.0  # per-layer max(compute, DRAM traffic) at efficiency 1; what the factor divides
    at_bound: bool = False  # the roofline / efficiency fell below bound_ms, so the estimate is the bound
    kind: str = "estimate"

    @property
    def fps(self) -> float:
        return 1000.0 / self.latency_ms if self.latency_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["fps"] = self.fps
        return d


def peak_and_bandwidth(profile: Any, precision: str, *, peak_tflops: float | None = None,
                       bandwidth_gbs: float | None = None) -> tuple[float, float | None, dict[str, Any]]:
    """(peak FLOP/s, bandwidth byte/s or None, where each came from) for ``precision`` on ``profile``."""
    if precision not in PEAK_KEYS:
        raise EdgekdError(f"precision {precision!r} has no roofline peak; use one of {', '.join(PEAK_KEYS)}")
    hw = profile.hardware
    key = PEAK_KEYS[precision]
    peak = peak_tflops if peak_tflops is not None else getattr(hw, key)
    if peak is None:
        listed = [p for p, k in PEAK_KEYS.items() if getattr(hw, k) is not None]
        raise EdgekdError(
            f"profile {profile.name!r} gives no hardware.{key}, needed for a {precision} estimate; "
            f"add it with its source to {profile.path or 'the profile'}, pass --peak-tflops, "
            f"or estimate a precision it has: {', '.join(listed) or 'none'}")
    bandwidth = bandwidth_gbs if bandwidth_gbs is not None else hw.memory_bandwidth_gbs
    source = {
        "peak": f"{peak:g} {'TOPS' if precision == 'int8' else 'TFLOPS'} "
                + ("(given by the user)" if peak_tflops is not None else f"(profile hardware.{key})"),
        "bandwidth": "not known: memory term omitted" if bandwidth is None else
        f"{bandwidth:g} GB/s " + ("(given by the user)" if bandwidth_gbs is not None else "(profile hardware.memory_bandwidth_gbs)"),
        "hardware_source": " ".join(hw.source.split()),
    }
    return peak * 1e12, (bandwidth * 1e9 if bandwidth else None), source


def roofline(cost: GraphCost, peak: float, bandwidth: float | None, precision: str) -> tuple[list[LayerEstimate], float]:
    """Per-layer times (ms) at 100% efficiency and their sum."""
    nbytes = BYTES_PER_ELEMENT[precision]
    layers = []
    for node in cost.nodes:
        moved = node.bytes_moved(nbytes, nbytes)
        t_compute = node.flops / peak
        t_memory = moved / bandwidth if bandwidth else 0.0
        if node.flops == 0 and moved == 0:
            continue
        layers.append(LayerEstimate(node.name, node.op_type, node.flops, moved, 1e3 * max(t_compute, t_memory),
                                    "compute" if t_compute >= t_memory else "memory"))
    return layers, sum(layer.ms for layer in layers)


def resolve_efficiency(profile: Any, backend: str, precision: str, efficiency: float | None) -> tuple[float, str, bool]:
    """(factor, its source, measured for this device?) — the user's value, the device's fit, or the host's borrowed."""
    from edgekd.estimate.calibration import CALIBRATION

    if efficiency is not None:
        if not 0 < efficiency <= 1:
            raise EdgekdError(f"efficiency {efficiency} must be in (0, 1]: the share of the roofline a runtime reaches")
        return efficiency, "given by the user (--efficiency)", False
    entries = CALIBRATION.get("entries", {})
    own = entries.get(f"{profile.name}/{backend}/{precision}")
    if own:
        return own["efficiency"], _describe_fit(own, CALIBRATION), True
    same_device = [k for k in entries if k.startswith(f"{profile.name}/") and k.endswith(f"/{precision}")]
    if same_device:  # measured on this device with another runtime (e.g. bf16 exists only through OpenVINO here)
        entry = entries[same_device[0]]
        return entry["efficiency"], f"{same_device[0]} (not {backend}): " + _describe_fit(entry, CALIBRATION), True
    borrowed = _nearest_entry(entries, precision)
    if borrowed is None:
        raise EdgekdError("no efficiency calibration found (edgekd/estimate/calibration.py is empty); run "
                          "`python tools/validate_estimates.py --write` on a machine with OpenVINO and ONNX Runtime, or pass --efficiency")
    key, entry = borrowed
    factor = min(1.0, entry["efficiency"])
    capped = " capped at 1: a host factor above 1 reflects its large CPU caches, which the roofline's DRAM bandwidth ignores;" \
        if entry["efficiency"] > 1 else ""
    return factor, (f"NOT measured on {profile.name}: borrowed from {key} ({entry['efficiency']:.3f},{capped} "
                    + _describe_fit(entry, CALIBRATION) + "); a GPU/NPU runtime may reach a different share"), False


def _nearest_entry(entries: dict[str, Any], precision: str) -> tuple[str, dict[str, Any]] | None:
    """The fitted entry to borrow for a device without its own: same precision class (16-bit ↔ bf16),
    preferring OpenVINO (the most graph-optimising runtime measured here, closest in kind to
    TensorRT and Core ML), else any entry."""
    wanted = {"fp32": ("fp32",), "fp16": ("fp16", "bf16"), "bf16": ("bf16", "fp16"), "int8": ("int8", "bf16", "fp16")}[precision]
    for p in wanted:
        matches = sorted((key for key in entries if key.endswith(f"/{p}")), key=lambda key: "/openvino/" not in key)
        if matches:
            return matches[0], entries[matches[0]]
    return next(iter(entries.items()), None)


def _describe_fit(entry: dict[str, Any], calibration: dict[str, Any]) -> str:
    how = ", contention-normalised latency" if "normalised" in calibration.get("latency", "") else ""
    return (f"fitted by tools/validate_estimates.py on {calibration.get('date', '?')}, {entry['runtime']}{how}, "
            f"on {len(entry['fit_models'])} zoo models; median abs error on {len(entry['test_models'])} held-out models "
            f"{entry['test_median_abs_error_pct']:.0f}% (docs/doctor.md)")


def estimate_cost(cost: GraphCost, profile: Any, precision: str, *, backend: str | None = None, efficiency: float | None = None,
                  peak_tflops: float | None = None, bandwidth_gbs: float | None = None) -> Estimate:
    """The estimate for an already-costed graph (the calibration tool prices one graph many times)."""
    backend = backend or profile.backend
    peak, bandwidth, source = peak_and_bandwidth(profile, precision, peak_tflops=peak_tflops, bandwidth_gbs=bandwidth_gbs)
    layers, roofline_ms = roofline(cost, peak, bandwidth, precision)
    factor, factor_source, measured = resolve_efficiency(profile, backend, precision, efficiency)
    bound_ms = 1e3 * sum(layer.flops for layer in layers) / peak
    at_bound = roofline_ms / factor < bound_ms * (1 - 1e-9)  # not float noise: the two sums add the same terms in another order
    latency_ms = bound_ms if at_bound else roofline_ms / factor
    notes = []
    if at_bound:
        notes.append(f"the roofline ÷ efficiency {factor:.3f} ({roofline_ms / factor:.2f} ms) is below FLOPs ÷ peak, "
                     "so the estimate is that bound itself")
    if bandwidth is None:
        notes.append("memory bandwidth unknown: only the compute term is counted, so this is a lower bound on latency")
    if cost.assumed_dims:
        notes.append(f"symbolic dims {', '.join(cost.assumed_dims)} taken as 1")
    if cost.uncosted_ops:
        notes.append(f"ops priced by the generic rule (1 FLOP/output element): {', '.join(cost.uncosted_ops)}")
    if not measured:
        notes.append("the efficiency factor is not measured on this device, so the error of this figure is unknown "
                     "(it may be off by several times); the bound (FLOPs ÷ peak) is the one hard number")
    basis = {**source, "backend": backend, "precision": precision, "bytes_per_element": BYTES_PER_ELEMENT[precision],
             "method": "sum over layers of max(FLOPs/peak, bytes/bandwidth), divided by the efficiency factor, never below "
                       "FLOPs/peak; "
                       "element-wise epilogues fused into the preceding conv/matmul (see edgekd.estimate.onnx_cost)",
             "efficiency": factor, "efficiency_source": factor_source, "profile": profile.name,
             "profile_sha256": profile.sha256, "input_shapes": cost.input_shapes}
    top = sorted(layers, key=lambda layer: -layer.ms)[:TOP_LAYERS]
    return Estimate(
        device=profile.name, backend=backend, precision=precision, latency_ms=latency_ms, bound_ms=bound_ms, efficiency=factor,
        efficiency_source=factor_source, flops=cost.flops, bytes=sum(layer.bytes for layer in layers),
        compute_bound_layers=sum(layer.bound == "compute" for layer in layers),
        memory_bound_layers=sum(layer.bound == "memory" for layer in layers), basis=basis, top_layers=top, notes=notes,
        roofline_ms=roofline_ms, at_bound=at_bound)


def estimate_latency(onnx_path: str | os.PathLike, profile: Any, precision: str, **kwargs: Any) -> Estimate:
    """Roofline estimate of one batch-1 inference of the ONNX graph on ``profile`` at ``precision``.

    ``profile`` is a :class:`edgekd.profiles.DeviceProfile` or its name. Keyword arguments:
    ``backend`` (default the profile's), ``efficiency``, ``peak_tflops``, ``bandwidth_gbs``
    (overrides, stated in the basis as given by the user).
    """
    from edgekd.profiles import load_profile

    if isinstance(profile, str):
        profile = load_profile(profile)
    path = Path(onnx_path)
    if not path.is_file():
        raise EdgekdError(f"ONNX file {str(path)!r} does not exist; export one with `edgekd export --backend onnxruntime`")
    estimate = estimate_cost(graph_cost(path), profile, precision, **kwargs)
    estimate.basis["onnx"] = str(path)
    return estimate
