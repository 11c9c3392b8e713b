"""Shape and size checks: input size vs output stride and vs the device's pipeline, camera aspect,
activation memory and weights vs the profile's memory budget.

Peak activation memory is computed from the ONNX graph after shape inference: nodes run in file
order, a tensor lives from the node that writes it to the last node that reads it, and the peak
of the live set is what a runtime's memory planner must hold at once (ONNX Runtime, OpenVINO and
TensorRT all reuse buffers this way; they may do slightly better by in-place ops, so this is an
upper bound on the planner's arena, not counting the runtime's own code and workspace).
"""
from __future__ import annotations

import math
from typing import Any

from edgekd.doctor.findings import Finding

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1}
ASPECT_TOLERANCE = 0.01


def check_stride(input_size: tuple[int, int], stride: int, where: str, device: str | None = None, *,
                 model: Any = None, arch: str = "the model") -> list[Finding]:
    """The input-size rule export applies (``edgekd.input_sizes.judge_input_size``), as a finding.

    A size export refuses (the model fails there, or returns logits of another size) is an error;
    a size off the stride grid that the model runs at (it resizes internally) is a warning, as
    export accepts it with a note. Without ``model`` (an artifact: its export accepted the size),
    an off-grid size is that warning.
    """
    from edgekd.input_sizes import judge_input_size

    verdict = judge_input_size(model, tuple(input_size), stride, arch)
    if verdict.status == "ok":
        return []
    h, w = input_size
    up = verdict.nearest
    details = {"input_size": [h, w], "output_stride": stride, "nearest_valid": list(up)}
    fix = f"use an input size that is a multiple of {stride}, e.g. {up[0]}x{up[1]} (edgekd export --input-size, or the profile's input_size)"
    if verdict.status == "refused":
        return [Finding("error", "stride-mismatch", f"input {h}x{w} ({where}) is not divisible by the output stride {stride}",
                        f"export refuses it: {verdict.message}", fix, device=device, details=details)]
    return [Finding("warning", "stride-offgrid", f"input {h}x{w} ({where}) is not a multiple of the output stride {stride}",
                    "export accepts it (the model resizes internally) and records a note, but the internal resampling "
                    f"costs time and shifts feature maps by up to {stride // 2} pixels", fix, device=device, details=details)]


def check_input_matches(artifact_size: tuple[int, int], profile: Any) -> list[Finding]:
    """A static artifact must take the size the device's pipeline feeds."""
    wanted = tuple(profile.input_size)
    if tuple(artifact_size) == wanted:
        return []
    return [Finding("error", "input-size-mismatch",
                    f"the artifact takes {artifact_size[0]}x{artifact_size[1]} but {profile.name} feeds {wanted[0]}x{wanted[1]}",
                    "a static-shape engine rejects other sizes; resizing frames again costs time and detail",
                    f"re-export with --input-size {wanted[0]}x{wanted[1]}, or change the profile's input_size",
                    device=profile.name, details={"artifact": list(artifact_size), "profile": list(wanted)})]


def check_camera(profile: Any) -> list[Finding]:
    """Camera frames whose aspect differs from the model input need padding (letterbox) or distortion."""
    cam_w, cam_h = profile.camera.width, profile.camera.height
    in_h, in_w = profile.input_size
    cam_aspect, in_aspect = cam_w / cam_h, in_w / in_h
    if abs(cam_aspect / in_aspect - 1) <= ASPECT_TOLERANCE:
        return []
    scale = min(in_w / cam_w, in_h / cam_h)
    padded = 1 - (cam_w * scale * cam_h * scale) / (in_w * in_h)
    crop = 1 - min(cam_aspect, in_aspect) / max(cam_aspect, in_aspect)
    better = _matching_size(cam_w, cam_h, in_h * in_w)
    return [Finding(
        "warning", "camera-aspect",
        f"camera {cam_w}x{cam_h} (aspect {cam_aspect:.3f}) vs model input {in_w}x{in_h} (aspect {in_aspect:.3f})",
        f"letterboxing wastes {padded:.0%} of the input pixels on padding (compute spent on nothing), stretching "
        f"distorts shapes by {abs(cam_aspect / in_aspect - 1):.0%}, cropping drops {crop:.0%} of the view",
        f"train and export at the camera's aspect, e.g. {better[0]}x{better[1]} (H×W, same pixel count, multiple of 32); "
        "otherwise choose crop or letterbox explicitly in the app", device=profile.name,
        details={"camera": [cam_w, cam_h], "input_hw": [in_h, in_w], "letterbox_padding_share": padded,
                 "crop_share": crop, "suggested_input_hw": list(better)})]


def _matching_size(cam_w: int, cam_h: int, pixels: int, multiple: int = 32) -> tuple[int, int]:
    """H×W with the camera's aspect, about ``pixels`` in total, both multiples of ``multiple``."""
    h = math.sqrt(pixels * cam_h / cam_w)
    w = h * cam_w / cam_h
    return max(multiple, round(h / multiple) * multiple), max(multiple, round(w / multiple) * multiple)


def activation_memory(model: Any) -> dict[str, int]:
    """Peak live activation elements (file order, free after last use), all activations, weight elements."""
    from edgekd.estimate.onnx_cost import load_graph, tensor_shapes

    model = load_graph(model)
    shapes, weights = tensor_shapes(model, set())
    size = {k: math.prod(v) for k, v in shapes.items()}
    nodes = list(model.graph.node)
    last_use: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for t in n.input:
            last_use[t] = i
    for o in model.graph.output:
        last_use[o.name] = len(nodes)
    live = {i.name: size.get(i.name, 0) for i in model.graph.input if i.name not in weights}
    current = peak = sum(live.values())
    total = current
    for i, n in enumerate(nodes):
        for o in n.output:
            if o and o not in weights and n.op_type not in ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"):
                live[o] = size.get(o, 0)
                current += live[o]
                total += live[o]
        peak = max(peak, current)
        for t in list(live):
            if last_use.get(t, -1) <= i:
                current -= live.pop(t)
    return {"peak_activation_elements": peak, "all_activation_elements": total,
            "weight_elements": sum(size.get(w, 0) for w in weights)}


def check_memory(memory: dict[str, int], profile: Any, file_bytes: int | None = None) -> list[Finding]:
    """Weights + peak activations at each of the profile's precisions vs ``real_time.memory_budget_mb``."""
    budget = profile.real_time.memory_budget_mb
    need = {p: (memory["peak_activation_elements"] + memory["weight_elements"]) * BYTES[p] / 2**20 for p in profile.precisions}
    fits = sorted(p for p, mb in need.items() if mb <= budget)
    figures = ", ".join(f"{p} {mb:.1f} MB" for p, mb in need.items())
    details = {"budget_mb": budget, "needed_mb": need, "peak_activation_mb_fp32": memory["peak_activation_elements"] * 4 / 2**20,
               "weights_mb_fp32": memory["weight_elements"] * 4 / 2**20, "file_mb": file_bytes / 2**20 if file_bytes else None}
    if not fits:
        severity, what = "error", f"weights + peak activations exceed {profile.name}'s {budget:g} MB budget at every precision ({figures})"
    elif len(fits) < len(need):
        severity, what = "warning", f"fits {profile.name}'s {budget:g} MB budget only at {', '.join(fits)} ({figures})"
    else:
        severity, what = "info", f"weights + peak activations {figures}, within {profile.name}'s {budget:g} MB budget"
    return [Finding(severity, "memory-budget", what,
                    "the runtime's arena holds the live activations and the weights; beyond the budget the AR app competes "
                    "with tracking and rendering for memory (or is killed by the OS on phones)",
                    "a lower precision, a smaller input size, or a narrower student" if severity != "info" else "nothing to do",
                    device=profile.name, details=details)]
