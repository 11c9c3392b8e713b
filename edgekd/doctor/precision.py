"""Precision pitfalls: a runtime's default precision that differs from the one asked for, and INT8
without (enough) calibration data.

OpenVINO's CPU plugin picks its inference precision at compile time: on CPUs with AMX or
AVX512-BF16 the default ``INFERENCE_PRECISION_HINT`` is bf16 even for an FP32 model (measured here:
max |Δlogit| 0.08, argmax agreement 99.7% on CGNet). On a profile that is this machine the plugin is
asked directly (``Core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")`` and the default hint);
for a remote CPU it cannot be known here, so the finding says what to check.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekd.doctor.findings import Finding

MIN_CALIB_IMAGES = 100  # below this INT8 ranges are noisy (docs/export.md runs used 100 real train images)


def openvino_cpu_defaults() -> dict[str, Any] | None:
    """This machine's OpenVINO CPU capabilities and default inference precision (None without OpenVINO)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    hint = str(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))
    hint = {"bfloat16": "bf16", "float32": "f32", "float16": "f16"}.get(hint.removeprefix("<Type: '").removesuffix("'>"), hint)
    return {"capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")), "default_hint": hint,
            "cpu": core.get_property("CPU", "FULL_DEVICE_NAME"), "openvino": ov.get_version()}


def check_openvino_default(profile: Any, requested: str = "fp32") -> list[Finding]:
    """The OpenVINO default-precision trap for a profile that runs OpenVINO without an explicit hint."""
    if "openvino" not in profile.accepted_backends or requested != "fp32":
        return []
    hint = profile.runtime.openvino_inference_precision
    if hint not in (None, "bf16", "f16"):
        return []
    if profile.connection.type != "local":
        return [Finding("info", "openvino-default-precision",
                        f"{profile.name} runs OpenVINO without INFERENCE_PRECISION_HINT: the plugin default depends on the CPU",
                        "on CPUs with AMX or AVX512-BF16 (Sapphire Rapids and later Xeons, some Core Ultra) the default is bf16, "
                        "not the fp32 that was asked for", "set runtime.openvino_inference_precision: f32 in the profile to get "
                        "fp32, or keep bf16 and check the bf16 parity that export measures", device=profile.name)]
    defaults = openvino_cpu_defaults()
    if defaults is None or defaults["default_hint"] == "f32":
        return []
    return [Finding(
        "warning", "openvino-default-precision",
        f"OpenVINO on this CPU runs {defaults['default_hint']} by default (INFERENCE_PRECISION_HINT), not the fp32 asked for",
        f"the CPU reports {', '.join(defaults['capabilities'])}; bf16 is ~2-5x faster here but changes the logits "
        "(measured on CGNet: max |Δlogit| 0.08, argmax agreement 99.7%), so an 'fp32' figure would not be fp32",
        "set INFERENCE_PRECISION_HINT=f32 (profile runtime.openvino_inference_precision: f32) for fp32, or state bf16 "
        "as the precision and judge it by the parity block of the export manifest", device=profile.name, details=defaults)]


def count_images(root: str | Path, split: str = "train") -> int:
    from edgekd.data import open_dataset

    return len(open_dataset(root, split))


def check_int8_calibration(profile: Any, calib: str | Path | None, split: str = "train") -> list[Finding]:
    """INT8 on the profile's list but no (or few) real calibration images given."""
    if "int8" not in profile.precisions:
        return []
    if calib is None:
        return [Finding("warning", "int8-no-calibration", f"{profile.name} lists int8 but no calibration data was given",
                        "INT8 scales come from activation ranges on real frames; without them there is no INT8 export "
                        "(edgekd refuses random noise), and ranges from other data clip real activations",
                        "pass --calib DIR (a dataset folder with a train split of real frames, 100+ images) to doctor and export",
                        device=profile.name)]
    n = count_images(calib, split)
    if n >= MIN_CALIB_IMAGES:
        return []
    return [Finding("warning", "int8-few-calibration-images", f"only {n} calibration images in {calib} [{split}]",
                    f"fewer than {MIN_CALIB_IMAGES} images give noisy activation ranges (docs/export.md: ESPNet lost 2.8% of its "
                    "FP32 mIoU with 100 images already)", "add real frames from the target camera to the calibration split",
                    device=profile.name, details={"images": n})]


def check_artifact_precision(manifest: dict[str, Any], device: str | None = None) -> list[Finding]:
    """INT8 artifacts without recorded calibration, and parity warnings recorded by export."""
    from edgekd.parity import worst_warning

    findings = []
    if manifest.get("precision") == "int8":
        calib = manifest.get("calibration") or {}
        n = calib.get("num_images")
        if not calib:
            findings.append(Finding("error", "int8-no-calibration", "INT8 artifact without a calibration record in its manifest",
                                    "nobody can tell which data set its quantisation ranges; accuracy is unknown",
                                    "re-export with --calib DIR", device=device))
        elif isinstance(n, int) and n < MIN_CALIB_IMAGES:
            findings.append(Finding("warning", "int8-few-calibration-images", f"INT8 calibrated on only {n} images",
                                    "noisy activation ranges cost accuracy", "re-export with --calib-images 100 or more",
                                    device=device, details={"calibration": calib}))
    warning = worst_warning(manifest.get("parity") or {})
    if warning:
        findings.append(Finding("warning", "parity-warning", f"export parity: {warning}",
                                "the artifact's class map differs from the PyTorch FP32 reference",
                                "check precision, calibration data and normalisation; see manifest.json parity", device=device))
    return findings
